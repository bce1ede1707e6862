// The six commands of RFC 753 section 3.4: builders produce the argument
// structures the RFC gives, and readArguments reads them back.
import t from 'tap';
import {
  cancelCommand,
  canceledCommand,
  decodeBag,
  deliverCommand,
  encodeBag,
  ImpError,
  printNotation,
  probeCommand,
  proplist,
  readArguments,
  readCommandError,
  responseCommand,
  type ImpCommand,
} from '../../src/imp/index.js';

const mailbox = proplist({ IA: 167772359, USER: 'DCrocker' });
const base = { mailbox, stamp: [167772404] };
const reply = { ...base, tid: { tn: 37, ihn: 167772404 }, trail: [167772404, 167772246] };
const viaBag = (command: ImpCommand): ImpCommand => decodeBag(encodeBag([{ tid: { tn: 1, ihn: 1 }, command }]))[0]!.command;
const args = (command: ImpCommand): string => printNotation(command.arguments, { width: 200 }).trim();

t.test('DELIVER: LIST( LIST( TEXT, ... ) ), type 1, empty error-list', async (t) => {
  const cmd = viaBag(deliverCommand({ ...base, options: ['FORWARD', 'GENDEL'] }));
  t.equal(cmd.type, 1);
  t.equal(args(cmd), 'LIST( LIST( TEXT="FORWARD", TEXT="GENDEL" ) )');
  t.same(readArguments(cmd), { operation: 'DELIVER', options: ['FORWARD', 'GENDEL'] });
  t.equal(readCommandError(cmd), undefined);
});

t.test('PROBE: LIST( ), type 1', async (t) => {
  const cmd = viaBag(probeCommand(base));
  t.equal(cmd.type, 1);
  t.equal(args(cmd), 'LIST( )');
  t.same(readArguments(cmd), { operation: 'PROBE' });
});

t.test('RESPONSE: answer yes carries an address, no carries reasons', async (t) => {
  const address = proplist({ IA: 167772359, USER: 'dcrocker' });
  const yes = viaBag(responseCommand({ ...reply, answer: true, address }));
  t.equal(yes.type, 2);
  t.equal(args(yes), 'LIST( LIST( INDEX=37, INTEGER=167772404 ), LIST( INTEGER=167772404, INTEGER=167772246 ), BOOLEAN=TRUE, PROPLIST( IA: 167772359, USER: dcrocker ) )');
  const y = readArguments(yes);
  t.equal(y.operation, 'RESPONSE');
  t.same(y, { operation: 'RESPONSE', tid: reply.tid, trail: reply.trail, answer: true, address });
  const no = viaBag(responseCommand({ ...reply, answer: false, reasons: ["Mailbox doesn't exist"], error: { errorClass: 3, errorString: 'Syntax error, in arguments' } }));
  t.same(readArguments(no), { operation: 'RESPONSE', tid: reply.tid, trail: reply.trail, answer: false, reasons: ["Mailbox doesn't exist"] });
  t.same(readCommandError(no), { errorClass: 3, errorString: 'Syntax error, in arguments' });
});

t.test('CANCEL: LIST( tid ), type 3; CANCELED: LIST( tid, trail, answer ), type 4', async (t) => {
  const cancel = viaBag(cancelCommand({ ...base, tid: { tn: 37, ihn: 167772404 } }));
  t.equal(cancel.type, 3);
  t.equal(args(cancel), 'LIST( LIST( INDEX=37, INTEGER=167772404 ) )');
  t.same(readArguments(cancel), { operation: 'CANCEL', tid: { tn: 37, ihn: 167772404 } });
  const canceled = viaBag(canceledCommand({ ...reply, answer: false }));
  t.equal(canceled.type, 4);
  t.same(readArguments(canceled), { operation: 'CANCELED', tid: reply.tid, trail: reply.trail, answer: false });
  t.same(readCommandError(canceled), { errorClass: 0, errorString: 'No Errors' });
});

t.test('operation names are case-independent; unknown ones pass through; wrong shapes are typed errors', async (t) => {
  const cmd = { ...deliverCommand(base), operation: 'deliver' };
  t.same(readArguments(cmd), { operation: 'DELIVER', options: ['REGULAR'] });
  const other = { ...probeCommand(base), operation: 'XFER' };
  t.same(readArguments(other), { operation: 'OTHER', name: 'XFER', arguments: other.arguments });
  const bad = { ...probeCommand(base), operation: 'CANCEL' };
  const err = t.throws(() => readArguments(bad)) as ImpError;
  t.equal(err.code, 'ERR_IMP_MESSAGE');
  t.equal(err.path, 'command.arguments');
  const bad2 = { ...cancelCommand({ ...base, tid: { tn: 1, ihn: 2 } }), operation: 'CANCELED' };
  t.equal((t.throws(() => readArguments(bad2)) as ImpError).code, 'ERR_IMP_MESSAGE');
});

t.test('ihns given unsigned are stored signed (two\'s complement)', async (t) => {
  const cmd = viaBag(deliverCommand({ mailbox, stamp: [0xfffffffe] }));
  t.same(cmd.stamp, [-2]);
});
