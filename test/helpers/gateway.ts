// Test fixtures for the gateway: a config in a temp dir, an smtp-server sink as the next
// hop, a raw socket SMTP client and polling helpers. Everything binds 127.0.0.1:0.
import { mkdtempSync, readdirSync, readFileSync, rmSync, existsSync, writeFileSync } from 'node:fs';
import { stringify } from 'yaml';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SMTPServer, type SMTPServerSession } from 'smtp-server';
import { validateConfig } from '../../src/config/load.js';
import type { Config, ConfigInput } from '../../src/config/schema.js';

export function tempDir(prefix: string): { dir: string; cleanup(): void } {
  const dir = mkdtempSync(join(tmpdir(), `mailbag-${prefix}-`));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A fast, quiet config rooted in `dir`; `overrides` are merged one level deep. */
export function testConfig(dir: string, overrides: Partial<Record<keyof ConfigInput, unknown>> = {}): Config {
  return validateConfig(testConfigInput(dir, overrides));
}

/** The same config as a YAML file (for the CLI); returns its path. */
export function writeTestConfig(dir: string, overrides: Partial<Record<keyof ConfigInput, unknown>> = {}): string {
  const file = join(dir, 'mailbag.yaml');
  writeFileSync(file, stringify(testConfigInput(dir, overrides)));
  return file;
}

export function testConfigInput(dir: string, overrides: Partial<Record<keyof ConfigInput, unknown>> = {}): Record<string, unknown> {
  const base: Record<string, Record<string, unknown> | unknown[]> = {
    gateway: { hostname: 'mx.test.invalid' },
    smtp: { listen: { host: '127.0.0.1', port: 0 }, greetingDelay: 0, localDomains: ['example.test', '*.example.test'] },
    spool: { dir: join(dir, 'spool') },
    store: { path: join(dir, 'mailbag.db') },
    queue: { retryInitial: 50, retryMax: 200, attemptTimeout: 5000, shutdownGrace: 2000 },
    routes: [{ domain: 'example.test', nexthop: `maildir:${join(dir, 'mailboxes')}` }],
    admin: { enabled: false },
    log: { level: 'silent' },
  };
  const merged: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(overrides)) {
    const b = base[k];
    merged[k] = Array.isArray(v) || !b || Array.isArray(b) ? v : { ...b, ...(v as object) };
  }
  return merged;
}

export interface SinkMessage {
  from: string;
  to: string[];
  bytes: Buffer;
}

export interface Sink {
  port: number;
  messages: SinkMessage[];
  /** Reply for RCPT TO per address (e.g. 550 for a user), default accept. */
  rcptReply: Map<string, { code: number; message: string }>;
  /** When set, every DATA gets this reply. */
  dataReply?: { code: number; message: string } | undefined;
  /** Connections accepted so far, and those of them that have closed (either side). */
  openedConnections: number;
  closedConnections: number;
  close(): Promise<void>;
}

/** A real SMTP (or LMTP) server as the next hop; records what arrives. */
export async function startSink(opts: { port?: number; lmtp?: boolean; socketTimeout?: number } = {}): Promise<Sink> {
  const messages: SinkMessage[] = [];
  const rcptReply = new Map<string, { code: number; message: string }>();
  const sink: Partial<Sink> = { messages, rcptReply, openedConnections: 0, closedConnections: 0 };
  const server = new SMTPServer({
    logger: false,
    lmtp: !!opts.lmtp,
    disabledCommands: ['AUTH', 'STARTTLS'],
    hideSTARTTLS: true,
    earlyTalkerDelay: 0,
    ...(opts.socketTimeout ? { socketTimeout: opts.socketTimeout } : {}),
    onConnect(_session: SMTPServerSession, cb: (err?: Error | null) => void) {
      sink.openedConnections = (sink.openedConnections ?? 0) + 1;
      cb();
    },
    onClose() {
      sink.closedConnections = (sink.closedConnections ?? 0) + 1;
    },
    onRcptTo(address, _s, cb) {
      const r = rcptReply.get(address.address);
      if (r) return cb(Object.assign(new Error(r.message), { responseCode: r.code }));
      cb();
    },
    onData(stream, session: SMTPServerSession, cb) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        if (sink.dataReply) return cb(Object.assign(new Error(sink.dataReply.message), { responseCode: sink.dataReply.code }));
        messages.push({
          from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
          to: session.envelope.rcptTo.map((r) => r.address),
          bytes: Buffer.concat(chunks),
        });
        cb(null, 'sink ok');
      });
    },
  } as ConstructorParameters<typeof SMTPServer>[0]);
  await new Promise<void>((resolve, reject) => {
    server.server.once('error', reject);
    server.listen(opts.port ?? 0, '127.0.0.1', () => resolve());
  });
  sink.port = (server.server.address() as AddressInfo).port;
  sink.close = () =>
    new Promise<void>((resolve) => {
      server.options.closeTimeout = 10;
      server.close(() => resolve());
    });
  return sink as Sink;
}

/**
 * How long a wait goes on at least before it gives up. A wait's bound is never a speed
 * check: on a loaded 2-core machine (CI runs four test files at once) starting a worker
 * thread or a gateway, or a round of deliveries, can take several seconds, and a bound of a
 * few seconds then fails a test whose gateway is right. Only a failing test waits this long.
 */
export const WAIT_FLOOR_MS = 30_000;

/** Polls until `fn` returns a truthy value, giving up after `ms` (at least `WAIT_FLOOR_MS`). */
export async function waitFor<T>(fn: () => T | Promise<T>, ms = 5000, what = 'condition'): Promise<NonNullable<T>> {
  const end = Date.now() + Math.max(ms, WAIT_FLOOR_MS);
  for (;;) {
    const v = await fn();
    if (v) return v as NonNullable<T>;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Every file delivered to a Maildir mailbox's new/ and cur/. */
export function maildirFiles(root: string, domain: string, local: string): { name: string; bytes: Buffer }[] {
  const out: { name: string; bytes: Buffer }[] = [];
  for (const sub of ['new', 'cur']) {
    const d = join(root, domain, local, sub);
    if (!existsSync(d)) continue;
    for (const name of readdirSync(d)) out.push({ name, bytes: readFileSync(join(d, name)) });
  }
  return out;
}

/** Removes the Received: line mailbag prepends (it is the first header, folded). */
export function stripReceived(bytes: Buffer): Buffer {
  const s = bytes.toString('latin1');
  const m = /^Received: [^\r\n]*(\r\n[ \t][^\r\n]*)*\r\n/.exec(s);
  if (!m) throw new Error('no leading Received: header');
  return bytes.subarray(Buffer.byteLength(m[0], 'latin1'));
}

/** A raw SMTP client: write exactly these bytes, read replies line by line. */
export class RawSmtp {
  private buf = '';
  private waiters: (() => void)[] = [];
  closed = false;
  private constructor(readonly socket: Socket) {
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => {
      this.buf += d;
      for (const w of this.waiters.splice(0)) w();
    });
    socket.on('close', () => {
      this.closed = true;
      for (const w of this.waiters.splice(0)) w();
    });
    socket.on('error', () => undefined);
  }

  static open(port: number): Promise<RawSmtp> {
    return new Promise((resolve, reject) => {
      const s = connect(port, '127.0.0.1', () => resolve(new RawSmtp(s)));
      s.once('error', reject);
    });
  }

  write(data: string | Buffer): void {
    this.socket.write(data);
  }

  /**
   * Writes and resolves once the bytes are handed to the kernel: a close() after it
   * reaches the server after them (TCP keeps the order), so no sleep is needed between.
   */
  send(data: string | Buffer): Promise<void> {
    return new Promise((resolve, reject) => this.socket.write(data, (err) => (err ? reject(err) : resolve())));
  }

  /** Next complete reply (multi-line replies joined with \n), or '' when the socket closed. */
  async reply(ms = 5000): Promise<string> {
    const end = Date.now() + ms;
    for (;;) {
      const m = /^((?:\d{3}-[^\r\n]*\r\n)*\d{3}(?: [^\r\n]*)?\r\n)/.exec(this.buf);
      if (m) {
        this.buf = this.buf.slice(m[1]!.length);
        return m[1]!.trimEnd().replace(/\r\n/g, '\n');
      }
      if (this.closed) return '';
      if (Date.now() > end) throw new Error(`no SMTP reply within ${ms} ms (have ${JSON.stringify(this.buf)})`);
      await new Promise<void>((r) => {
        this.waiters.push(r);
        setTimeout(r, 50);
      });
    }
  }

  /** Sends a command line and returns the reply. */
  async cmd(line: string): Promise<string> {
    this.write(line + '\r\n');
    return this.reply();
  }

  close(): void {
    this.socket.destroy();
  }
}
