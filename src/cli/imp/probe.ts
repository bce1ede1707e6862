// `mailbag imp probe`: asks a peer MPM whether a mailbox exists (RFC 753 PROBE) and
// prints its RESPONSE.
import { connect as connectTcp, type Socket } from 'node:net';
import { connect as connectTls } from 'node:tls';
import { loadConfig, resolveConfigPath } from '../../config/load.js';
import {
  decodeBag,
  encodeBag,
  encodeShippingUnit,
  messageElement,
  printNotation,
  probeCommand,
  readReply,
  ShippingUnitDecoder,
  tidKey,
  type ImpMessage,
} from '../../imp/index.js';
import { recipientMailbox } from '../../imp/mime/index.js';
import { CliError, UsageError, parseCommandArgs, writeOutput, type Command } from '../command.js';
import { parseTimeoutOption, withImpErrors } from './common.js';

export const impProbeCommand: Command = {
  name: 'probe',
  summary: 'ask a peer MPM whether a mailbox exists (PROBE) and print its RESPONSE',
  usage: [
    'mailbag imp probe --peer HOST:PORT ADDR [--tls] [--timeout SECONDS] [--config FILE]',
    '',
    'Sends one PROBE for ADDR (user@host) to the peer, tid (random tn, imp.ihn), stamp (imp.ihn),',
    'and prints the RESPONSE in RFC 753 notation. Exit 0 on answer yes; exit 1 on answer no,',
    'with the reason, or when the peer cannot be reached or answers something else.',
    '',
    'options:',
    '  --peer HOST:PORT   the peer\'s IMP listener',
    '  --tls              TLS from the first octet (certificates are not verified: testing aid)',
    '  --timeout SECONDS  give up after this long (default 30; or with a unit: 500ms, 2m)',
    '  --config FILE      configuration file for imp.ihn and the decoder limits',
  ].join('\n'),
  async run(argv, io) {
    const { values, positionals } = parseCommandArgs(argv, {
      peer: { type: 'string' },
      tls: { type: 'boolean' },
      timeout: { type: 'string' },
      config: { type: 'string', short: 'c' },
    });
    if (positionals.length !== 1) throw new UsageError('expected exactly one ADDR');
    const address = positionals[0]!;
    if (!/^[^@\s]+@[^@\s]+$/.test(address)) throw new UsageError(`ADDR must be user@host, got ${JSON.stringify(address)}`);
    const peer = parsePeer(values.peer);
    const timeoutMs = parseTimeoutOption(values.timeout);
    const config = loadConfig(resolveConfigPath(values.config, io.env));
    const ihn = config.imp.ihn | 0;
    const probe: ImpMessage = {
      tid: { tn: Math.floor(Math.random() * 0x10000), ihn },
      command: probeCommand({ mailbox: recipientMailbox(address), stamp: [ihn] }),
    };
    const reply = await withImpErrors(() =>
      exchange(peer, !!values.tls, encodeShippingUnit(encodeBag([probe])), probe, timeoutMs, config.imp.maxBagBytes),
    );
    await writeOutput(io, printNotation(messageElement(reply)) + '\n');
    const r = await withImpErrors(() => readReply(reply));
    if (r.error.errorClass !== 0) throw new CliError(`error class ${r.error.errorClass}: ${r.error.errorString}`, 'ERR_MAILBAG_IMP_ERROR');
    if (!r.answer) throw new CliError(`no: ${r.reasons.join('; ') || 'no reason given'}`, 'ERR_MAILBAG_IMP_NO');
  },
};

function parsePeer(value: string | undefined): { host: string; port: number } {
  if (value === undefined) throw new UsageError('--peer HOST:PORT is required');
  const m = /^(\[[^\]]+\]|[^:]+):(\d{1,5})$/.exec(value);
  const port = m ? Number(m[2]) : NaN;
  if (!m || port < 1 || port > 65535) throw new UsageError(`--peer must be HOST:PORT, got ${JSON.stringify(value)}`);
  return { host: m[1]!.replace(/^\[(.*)\]$/, '$1'), port };
}

/** Ships one unit and resolves with the reply naming `request`'s tid. */
function exchange(peer: { host: string; port: number }, tls: boolean, unit: Buffer, request: ImpMessage, timeoutMs: number, maxBagBytes: number): Promise<ImpMessage> {
  return new Promise((resolve, reject) => {
    const socket: Socket = tls
      ? connectTls({ host: peer.host, port: peer.port, rejectUnauthorized: false })
      : connectTcp({ host: peer.host, port: peer.port });
    const decoder = new ShippingUnitDecoder({ maxBagBytes });
    const want = tidKey(request.tid);
    let done = false;
    const finish = (err: Error | undefined, msg?: ImpMessage) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      if (err) reject(err);
      else resolve(msg!);
    };
    const timer = setTimeout(() => finish(new CliError(`no RESPONSE from ${peer.host}:${peer.port} within ${timeoutMs} ms`, 'ERR_MAILBAG_IMP_TIMEOUT')), timeoutMs);
    socket.once(tls ? 'secureConnect' : 'connect', () => socket.end(unit));
    socket.on('error', (err) => finish(new CliError(`${peer.host}:${peer.port}: ${err.message}`, 'ERR_MAILBAG_IMP_CONNECT')));
    socket.on('data', (chunk: Buffer) => {
      try {
        for (const u of decoder.push(chunk)) {
          for (const m of decodeBag(u.bag)) {
            const r = readReply(m);
            // Our reply names our tid; a reply naming no transaction (0, 0) is the peer's last word on the stream.
            if (tidKey(r.tid) === want || (r.tid.tn === 0 && r.tid.ihn === 0)) return finish(undefined, m);
          }
        }
      } catch (err) {
        finish(err as Error);
      }
    });
    socket.on('close', () => finish(new CliError(`${peer.host}:${peer.port} closed the connection without a RESPONSE`, 'ERR_MAILBAG_IMP_CLOSED')));
  });
}
