// `mailbag imp send`: ship one message to a peer MPM as one bag (one DELIVER per --to,
// the document shared) and print each ACKNOWLEDGE in RFC 753 notation.
import { loadConfig, resolveConfigPath } from '../../config/load.js';
import { encodeBag } from '../../imp/bag.js';
import { encodeShippingUnit } from '../../imp/compression.js';
import { deliverCommand, readArguments, tidKey } from '../../imp/message.js';
import { messageElement } from '../../imp/bag.js';
import { mimeToImpDocument, recipientMailbox } from '../../imp/mime/to-imp.js';
import { printNotation } from '../../imp/notation.js';
import { exchangeBag } from '../../imp/shipper/exchange.js';
import { TnAllocator } from '../../imp/shipper/tn-allocator.js';
import type { ImpMessage, Tid } from '../../imp/types.js';
import { CliError, UsageError, parseCommandArgs, readInput, type Command } from '../command.js';
import { openStoreForCli } from '../store-access.js';
import { onePositional, parseInteger, parseTimeoutOption, withImpErrors } from './common.js';

const usage = [
  'mailbag imp send --peer HOST:PORT --to ADDR [--to ADDR]... [--from ADDR] [--compress] [--ihn N] [--tls] [--timeout SECONDS] [--config FILE] [FILE.eml]',
  '',
  'Ships FILE.eml (stdin when omitted or -) to the IMP acceptor at HOST:PORT as one bag: one',
  'DELIVER per --to, sharing one document, stamped and numbered with imp.ihn and the next',
  'transaction numbers from the store (as the gateway does). Prints each ACKNOWLEDGE in',
  'notation. Exit 0 when every answer is yes; 1 when one is no (the reason on stderr) or',
  'none came; 2 on a usage error.',
  '',
  'options:',
  '  --peer HOST:PORT  the peer MPM ([v6]:PORT for IPv6)',
  '  --to ADDR         envelope recipient (repeatable, at least one)',
  '  --from ADDR       envelope sender, carried as ENVELOPE-FROM (default: none)',
  '  --compress        RFC 753 Appendix B basic compression (default: imp.compress)',
  '  --tls             TLS from the first octet, for a peer with imp.tls (certificates are not',
  '                    verified: testing aid)',
  '  --ihn N           send as this internet host number (default: imp.ihn); needed to send to',
  '                    the gateway of the same config, which would see its own ihn in the stamp',
  '  --timeout SECONDS connect and wait for the ACKNOWLEDGEs at most this long (default 30;',
  '                    or with a unit: 500ms, 2m)',
  '  --config FILE     configuration file (default: $MAILBAG_CONFIG or config/default.yaml)',
].join('\n');

function parsePeer(text: string): { host: string; port: number } {
  const m = /^(\[[^\]]+\]|[^:[\]]+):(\d{1,5})$/.exec(text.trim());
  const port = m ? Number(m[2]) : 0;
  if (!m || port < 1 || port > 65535) throw new UsageError(`--peer ${JSON.stringify(text)} must be HOST:PORT`);
  return { host: m[1]!.replace(/^\[|\]$/g, ''), port };
}

function address(text: string): string {
  const a = text.trim().replace(/^<(.*)>$/, '$1');
  const at = a.lastIndexOf('@');
  if (at <= 0 || at === a.length - 1 || /[\s<>,]/.test(a)) throw new UsageError(`--to ${JSON.stringify(text)} is not one mail address (local@domain)`);
  return a;
}

export const impSendCommand: Command = {
  name: 'send',
  summary: 'ship one message to a peer MPM over IMP and print the ACKNOWLEDGEs',
  usage,
  async run(argv, io) {
    const { values, positionals } = parseCommandArgs(argv, {
      peer: { type: 'string' },
      to: { type: 'string', multiple: true },
      from: { type: 'string' },
      compress: { type: 'boolean' },
      tls: { type: 'boolean' },
      ihn: { type: 'string' },
      timeout: { type: 'string' },
      config: { type: 'string', short: 'c' },
    });
    if (values.peer === undefined) throw new UsageError('--peer HOST:PORT is required');
    const peer = parsePeer(values.peer);
    if (!values.to?.length) throw new UsageError('--to ADDR is required');
    const recipients = values.to.map(address);
    const ms = parseTimeoutOption(values.timeout);
    const file = onePositional(positionals);
    const ihnOption = values.ihn === undefined ? undefined : parseInteger(values.ihn, '--ihn', -2147483648, 4294967295);
    const config = loadConfig(resolveConfigPath(values.config, io.env));
    const raw = await readInput(file, io);
    const ihn = ihnOption ?? config.imp.ihn;

    // The same numbering as the gateway's shipper: tns reserved in the store, so they never
    // collide with the gateway's own messages that may still await a reply.
    const store = openStoreForCli(config.store.path, { create: true });
    let messages: ImpMessage[];
    try {
      const tns = new TnAllocator({ ihn, block: recipients.length, highWater: { load: () => store.impTns.mark(ihn), reserve: (from, block) => store.impTns.reserve(ihn, from, block) } });
      const document = await withImpErrors(() => mimeToImpDocument(raw, values.from !== undefined ? { envelopeFrom: values.from } : {}));
      messages = recipients.map((rcpt) => ({
        tid: tns.allocate()!,
        command: deliverCommand({ mailbox: recipientMailbox(rcpt), stamp: [tns.ihn], options: ['REGULAR'] }),
        document,
      }));
    } finally {
      store.close();
    }
    const bag = await withImpErrors(() => encodeBag(messages));
    if (bag.length > config.imp.maxBagBytes) throw new CliError(`the message needs a ${bag.length}-octet bag; imp.maxBagBytes is ${config.imp.maxBagBytes}`, 'ERR_IMP_TOO_LARGE');
    const unit = encodeShippingUnit(bag, { compress: values.compress ?? config.imp.compress });

    const waiting = new Map<string, string>(messages.map((m, i) => [tidKey(m.tid), recipients[i]!]));
    const refusals: string[] = [];
    let peerIsUs = false;
    const ended = await exchangeBag({
      ...peer,
      ...(values.tls ? { tls: { verify: false } } : {}),
      unit,
      connectTimeoutMs: ms,
      idleTimeoutMs: ms,
      maxBagBytes: config.imp.maxBagBytes,
      onReply(reply) {
        io.stdout.write(`${printNotation(messageElement(reply))}\n`);
        let args;
        try {
          args = readArguments(reply.command);
        } catch {
          return false;
        }
        if (args.operation !== 'ACKNOWLEDGE') return false;
        const rcpt = waiting.get(tidKey(args.tid as Tid));
        if (rcpt === undefined) return false;
        waiting.delete(tidKey(args.tid));
        if (!args.answer) refusals.push(`<${rcpt}>: ACKNOWLEDGE no: ${args.reasons.join('; ') || 'no reason given'}`);
        // The reply's tid is the answering MPM's: our own ihn there means every stamp loops.
        if (!args.answer && (reply.tid.ihn | 0) === (ihn | 0)) peerIsUs = true;
        return waiting.size === 0;
      },
    });
    if (ended) throw new CliError(`${ended} (${waiting.size} of ${messages.length} not acknowledged)`, 'ERR_IMP_NO_ACKNOWLEDGE');
    if (peerIsUs) refusals.push(`the peer has this config's imp.ihn (${ihn}): pass --ihn N (another number) to send to it as another MPM`);
    if (!refusals.length) return;
    // The CLI prints an error's first line only: one line per refused recipient here, the last one thrown.
    for (const line of refusals.slice(0, -1)) io.stderr.write(`mailbag imp send: ${line}\n`);
    throw new CliError(refusals.at(-1)!, 'ERR_IMP_ANSWER_NO');
  },
};
