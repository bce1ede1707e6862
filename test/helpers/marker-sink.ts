// A next-hop SMTP server for tests: accepts everything and records each complete
// message (its raw bytes, the `X-Test-Marker` header value and when it arrived).
// A message whose connection drops mid-DATA is not recorded, as a real MTA would not
// have accepted it.
import { SMTPServer } from 'smtp-server';

export interface SunkMessage {
  marker: string | undefined;
  from: string;
  to: string[];
  raw: Buffer;
  at: number;
}

export interface MarkerSink {
  port: number;
  messages: SunkMessage[];
  /** How many times each marker arrived. */
  counts(): Map<string, number>;
  close(): Promise<void>;
}

export function markerOf(raw: Buffer | string): string | undefined {
  const text = typeof raw === 'string' ? raw : raw.subarray(0, 8192).toString('latin1');
  return /^X-Test-Marker: (\S+)\r?$/m.exec(text)?.[1];
}

export async function startMarkerSink(opts: { port?: number; reply?: () => Error | undefined } = {}): Promise<MarkerSink> {
  const messages: SunkMessage[] = [];
  const server = new SMTPServer({
    disableReverseLookup: true,
    logger: false,
    authOptional: true,
    hideSTARTTLS: true,
    earlyTalkerDelay: 0,
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('error', () => undefined);
      stream.on('end', () => {
        const refusal = opts.reply?.();
        if (refusal) return callback(refusal);
        const raw = Buffer.concat(chunks);
        messages.push({
          marker: markerOf(raw),
          from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
          to: session.envelope.rcptTo.map((r) => r.address),
          raw,
          at: Date.now(),
        });
        callback();
      });
    },
  });
  server.on('error', () => undefined);
  await new Promise<void>((resolve, reject) => {
    server.server.once('error', reject);
    server.listen(opts.port ?? 0, '127.0.0.1', () => resolve());
  });
  const { port } = server.server.address() as { port: number };
  return {
    port,
    messages,
    counts() {
      const m = new Map<string, number>();
      for (const msg of messages) if (msg.marker) m.set(msg.marker, (m.get(msg.marker) ?? 0) + 1);
      return m;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        // A next hop going down drops its sessions at once instead of smtp-server's 30 s grace.
        for (const c of server.connections) c.close();
      }),
  };
}
