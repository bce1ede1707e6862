// An smtp-server next hop that advertises or hides 8BITMIME, SMTPUTF8 and DSN, and
// records each transaction's MAIL FROM and RCPT TO command lines exactly as received
// (smtp-server itself hands the application decoded xtext and UTF-8 domains).
import type { AddressInfo, Socket } from 'node:net';
import { SMTPServer, type SMTPServerAddress, type SMTPServerOptions, type SMTPServerSession } from 'smtp-server';

export interface ParamSinkMessage {
  /** `MAIL FROM:<...> PARAMS` as written by the client. */
  mail: string;
  /** `RCPT TO:<...> PARAMS` lines of accepted recipients, as written. */
  rcpts: string[];
  bytes: Buffer;
}

export interface ParamSink {
  port: number;
  messages: ParamSinkMessage[];
  /** Reply for RCPT TO per address, default accept. */
  rcptReply: Map<string, { code: number; message: string }>;
  close(): Promise<void>;
}

interface Parsing {
  _parseAddressCommand(name: string, command: Buffer | string): (SMTPServerAddress & { line?: string }) | false;
}

class RecordingServer extends SMTPServer {
  override connect(socket: Socket, socketOptions?: Parameters<SMTPServer['connect']>[1]): void {
    super.connect(socket, socketOptions);
    let newest: Parsing | undefined;
    for (const c of this.connections) newest = c as unknown as Parsing;
    if (!newest || (newest as { recorded?: boolean }).recorded) return;
    (newest as { recorded?: boolean }).recorded = true;
    const parse = newest._parseAddressCommand.bind(newest);
    newest._parseAddressCommand = (name, command) => {
      const parsed = parse(name, command);
      if (parsed) parsed.line = command.toString().trim();
      return parsed;
    };
  }
}

export async function startParamSink(opts: { dsn: boolean; eightBitMime: boolean; smtpUtf8: boolean; size?: number }): Promise<ParamSink> {
  const messages: ParamSinkMessage[] = [];
  const rcptReply = new Map<string, { code: number; message: string }>();
  const options: SMTPServerOptions & { earlyTalkerDelay?: number } = {
    logger: false,
    disabledCommands: ['AUTH', 'STARTTLS'],
    hideSTARTTLS: true,
    earlyTalkerDelay: 0,
    hideDSN: !opts.dsn,
    hide8BITMIME: !opts.eightBitMime,
    hideSMTPUTF8: !opts.smtpUtf8,
    // SIZE is advertised only with a limit
    size: opts.size ?? 10 * 1024 * 1024,
    onRcptTo(address, _s, cb) {
      const r = rcptReply.get(address.address);
      if (r) return cb(Object.assign(new Error(r.message), { responseCode: r.code }));
      cb();
    },
    onData(stream, session: SMTPServerSession, cb) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        const line = (a: SMTPServerAddress | false) => (a ? ((a as SMTPServerAddress & { line?: string }).line ?? '') : '');
        messages.push({ mail: line(session.envelope.mailFrom), rcpts: session.envelope.rcptTo.map(line), bytes: Buffer.concat(chunks) });
        cb(null, 'sink ok');
      });
    },
  };
  const server = new RecordingServer(options);
  await new Promise<void>((resolve, reject) => {
    server.server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  return {
    port: (server.server.address() as AddressInfo).port,
    messages,
    rcptReply,
    close: () =>
      new Promise<void>((resolve) => {
        server.options.closeTimeout = 10;
        server.close(() => resolve());
      }),
  };
}
