// Replies stay small whatever the request: a bag of messages that share one command
// (section 3.6 sharing, a 14-octet reference each) must not make reply bags that echo
// a large portion of it once per message (an unknown operation name is echoed by the
// "Command not implemented" reply).
import t from 'tap';
import { deliverCommand, encodeBag, encodeShippingUnit, proplist, readReply, textElement, type ImpMessage } from '../src/imp/index.js';
import { impClient } from './helpers/imp-client.js';
import { startImpGateway } from './helpers/imp-gateway.js';

const ORIGIN = 167772404;
const OURS = 167772359;

t.test('100 messages sharing a command whose operation name is 200,000 octets: 100 small class 3 replies', async (t) => {
  const { gw } = await startImpGateway(t, { name: 'imp-reply-size', ihn: OURS });
  const command: ImpMessage['command'] = {
    mailbox: proplist({ HOST: 'example.test', USER: 'alice' }),
    stamp: [ORIGIN],
    type: 1,
    operation: 'X'.repeat(200_000),
    arguments: { type: 'list', items: [] },
    errorList: { type: 'list', items: [] },
  };
  const messages = Array.from({ length: 100 }, (_, i): ImpMessage => ({ tid: { tn: i + 1, ihn: ORIGIN }, command }));
  const bag = encodeBag(messages);
  t.ok(bag.length < 250_000, 'the command is on the wire once');
  const c = await impClient(gw.impAddress()!.port);
  await c.send(encodeShippingUnit(bag));
  const replies = await c.replies(100);
  t.same(
    replies.map((m) => [readReply(m).tid.tn, readReply(m).answer, readReply(m).error.errorClass]),
    messages.map((m) => [m.tid.tn, false, 3]),
  );
  t.match(readReply(replies[0]!).error.errorString, /^Syntax error, command unrecognized: .*operation.* 200000 octets/);
  t.ok(replies.every((m) => m.command.operation.length < 64), 'no reply echoes the operation name');
  c.close();
});

t.test('operations this MPM does not know count as OTHER: a peer cannot mint a metric series per name', async (t) => {
  const { gw } = await startImpGateway(t, { name: 'imp-reply-size', ihn: OURS });
  const messages = Array.from(
    { length: 30 },
    (_, i): ImpMessage => ({
      tid: { tn: i + 1, ihn: ORIGIN },
      command: {
        mailbox: proplist({ HOST: 'example.test', USER: 'alice' }),
        stamp: [ORIGIN],
        type: 1,
        operation: `ZAP${i}`,
        arguments: { type: 'list', items: [] },
        errorList: { type: 'list', items: [] },
      },
    }),
  );
  const c = await impClient(gw.impAddress()!.port);
  await c.send(encodeShippingUnit(encodeBag(messages)));
  const replies = await c.replies(30);
  t.same(
    replies.map((m) => m.command.operation),
    messages.map((m) => m.command.operation),
    'each is answered "Command not implemented" with its own operation name',
  );
  c.close();
  const text = await gw.metrics.registry.metrics();
  t.notMatch(text, /ZAP/);
  t.match(text, /mailbag_imp_replies_total\{operation="OTHER",answer="no",error_class="2"\} 30/);
});

t.test('4096 looping DELIVERs sharing a 255-ihn stamp: every one answered no, in reply bags the format can carry', async (t) => {
  const { gw } = await startImpGateway(t, { name: 'imp-reply-size', ihn: OURS });
  const stamp = [...Array.from({ length: 254 }, (_, i) => 2_000_000_000 + i), OURS];
  const command = deliverCommand({ mailbox: proplist({ HOST: 'example.test', USER: 'alice' }), stamp });
  const document = { header: proplist({ SUBJECT: 'loop' }), body: { type: 'list' as const, items: [textElement('x')] } };
  const messages = Array.from({ length: 4096 }, (_, i): ImpMessage => ({ tid: { tn: i + 1, ihn: ORIGIN }, command, document }));
  const c = await impClient(gw.impAddress()!.port);
  await c.send(encodeShippingUnit(encodeBag(messages)));
  const replies = await c.replies(4096);
  t.equal(replies.length, 4096);
  t.ok(
    replies.every((m, i) => {
      const r = readReply(m);
      return r.tid.tn === i + 1 && r.answer === false && /^routing loop/.test(r.reasons[0] ?? '');
    }),
    'each answered no as a routing loop, in order',
  );
  c.close();
});

t.test('a refusal does not echo a large value of the request: its reason and error string stay short', async (t) => {
  const { gw } = await startImpGateway(t, { name: 'imp-reply-size', ihn: OURS });
  // 200 DELIVERs sharing a header whose carriage marker names a 60,000-octet version
  const command = deliverCommand({ mailbox: proplist({ HOST: 'example.test', USER: 'alice' }), stamp: [ORIGIN] });
  const document = { header: proplist({ 'MAILBAG-MIME': 'v'.repeat(60_000) }), body: { type: 'list' as const, items: [textElement('x')] } };
  const messages = Array.from({ length: 200 }, (_, i): ImpMessage => ({ tid: { tn: i + 1, ihn: ORIGIN }, command, document }));
  const c = await impClient(gw.impAddress()!.port);
  await c.send(encodeShippingUnit(encodeBag(messages)));
  const replies = (await c.replies(200)).map((m) => readReply(m));
  t.ok(replies.every((r) => !r.answer && r.error.errorClass === 3), 'each refused, class 3');
  t.match(replies[0]!.error.errorString, /^Syntax error, in arguments: message\[0\]\.document\.header\.pairs\[0\]: unsupported MAILBAG-MIME version "vvv/);
  t.ok(replies.every((r) => r.error.errorString.length <= 512 && r.reasons.every((s) => s.length <= 512)), 'no reason or error string over 512 characters');
  c.close();
});

t.test('a refusal quoting 8-bit octets of the request (a BITSTR value) is still a 7-bit TEXT reply', async (t) => {
  const { gw } = await startImpGateway(t, { name: 'imp-reply-size', ihn: OURS });
  const version = Buffer.from('v\u00e9', 'latin1');
  const message: ImpMessage = {
    tid: { tn: 5, ihn: ORIGIN },
    command: deliverCommand({ mailbox: proplist({ HOST: 'example.test', USER: 'alice' }), stamp: [ORIGIN] }),
    document: {
      header: { type: 'proplist', pairs: [{ name: 'MAILBAG-MIME', value: { type: 'bitstr', bits: version.length * 8, data: version } }] },
      body: { type: 'list', items: [textElement('x')] },
    },
  };
  const c = await impClient(gw.impAddress()!.port);
  await c.send(encodeShippingUnit(encodeBag([message])));
  const [reply] = (await c.replies(1)).map((m) => readReply(m));
  t.same([reply!.tid.tn, reply!.answer, reply!.error.errorClass], [5, false, 3]);
  t.match(reply!.error.errorString, /unsupported MAILBAG-MIME version "v\?"/);
  c.close();
});

t.test('a refusal naming an 8-bit domain of the request (relaying denied) is still a 7-bit TEXT reply', async (t) => {
  const { gw } = await startImpGateway(t, { name: 'imp-reply-size', ihn: OURS, routes: [{ domain: '*', nexthop: 'smtp://127.0.0.1:9' }] });
  const host = Buffer.from('bücher.example', 'utf8');
  const message: ImpMessage = {
    tid: { tn: 6, ihn: ORIGIN },
    command: deliverCommand({
      mailbox: { type: 'proplist', pairs: [{ name: 'HOST', value: { type: 'bitstr', bits: host.length * 8, data: host } }, { name: 'USER', value: textElement('bob') }] },
      stamp: [ORIGIN],
    }),
    document: { header: proplist({ SUBJECT: 'hi' }), body: { type: 'list', items: [textElement('x')] } },
  };
  const c = await impClient(gw.impAddress()!.port);
  await c.send(encodeShippingUnit(encodeBag([message])));
  const [reply] = (await c.replies(1)).map((m) => readReply(m));
  t.same([reply!.tid.tn, reply!.answer, reply!.error.errorClass], [6, false, 0]);
  t.match(reply!.reasons, [/^relaying denied: b\?+cher\.example is not a local domain/]);
  c.close();
});
