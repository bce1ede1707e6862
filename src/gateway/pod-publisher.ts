// mailbag's own events served as the PoD Log API (`/v1/stream`, "PoD Log API, November
// 2020 Revision C"): HS256 bearer tokens, one session per token, permessage-deflate with
// both no-context-takeover options, live mode resumed within the hour, archive windows.
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import type { Logger } from 'pino';
import { WebSocketServer, type WebSocket } from 'ws';
import { TokenError, verifyToken, type PodTokenClaims } from '../pod/jwt.js';
import type { PublisherEventSource, SourcedEvent } from '../pod/event-source.js';
import type { PublisherIdentity } from '../pod/publish-events.js';
import { BadStreamRequest, parseStreamRequest, type StreamRequest } from '../pod/stream-request.js';
import type { Store } from '../store/store.js';
import type { ComponentHealth, GatewayComponent } from './component.js';
import { PodFactsRecorder } from './pod-facts-recorder.js';
import { loadOrCreateSecret } from './pod-secret.js';
import { StoreEventSource } from './pod-store-source.js';

const HOUR_MS = 3_600_000;
const BATCH = 500;
/** Above this many bytes queued on a socket, wait before sending more (a slow reader). */
const HIGH_WATER = 4 * 1024 * 1024;

/**
 * The error table of the document: status, reason phrase; and 503 for an upgrade that
 * arrives while the publisher stops (not in the table: a consumer retries it, as any
 * status the table does not name).
 */
const REASONS = {
  400: 'Bad Request',
  401: 'Unauthorized',
  404: 'Not Found',
  405: 'Method not allowed',
  409: 'Exceeded maximum number of sessions per token',
  503: 'Service Unavailable',
} as const;
type RefusalStatus = keyof typeof REASONS;

export interface PublisherConfig {
  listen: { host: string; port: number };
  tls?: { key: string; cert: string } | undefined;
  secretFile: string;
  cid: string;
  pollInterval: number;
  /**
   * How often each session is pinged; a client that answered nothing (pong, ping, data)
   * by the next ping, with nothing of ours still queued for it, is gone. Default 60 s.
   */
  pingInterval?: number;
}

const DEFAULT_PING_INTERVAL_MS = 60_000;
/**
 * The payload of the keepalive pings, so their pongs are told apart from those of the
 * empty ping after each batch, which acknowledge the events before it.
 */
const KEEPALIVE = Buffer.from('keepalive');
/** Close codes of a client that took every frame before its close: normal, going away, none given. */
const NORMAL_CLOSE: ReadonlySet<number> = new Set([1000, 1001, 1005]);

export interface PodPublisherOptions {
  config: PublisherConfig;
  store: Store;
  identity: Omit<PublisherIdentity, 'cid'>;
  logger: Logger;
  /** Tests: a simulated clock (resume windows, archive limits, facts times). */
  now?: () => number;
  /** Where events come from; by default mailbag's own, from the store (`StoreEventSource`). */
  source?: PublisherEventSource;
}

/** The listener could not bind (a port in use, a privileged port, an address not of this host). */
export class PodPublisherListenError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'PodPublisherListenError';
  }
}

class Refusal extends Error {
  constructor(
    readonly status: RefusalStatus,
    message: string,
  ) {
    super(message);
  }
}

function refuse(socket: Socket, status: RefusalStatus, detail: string): void {
  const body = `${REASONS[status]}: ${detail}\n`;
  // An upgrade's socket has no error listener once the HTTP server hands it over: a client
  // that resets while the refusal is written (ECONNRESET, EPIPE) would be an uncaught exception.
  socket.on('error', () => socket.destroy());
  socket.end(
    `HTTP/1.1 ${status} ${REASONS[status]}\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
}

/**
 * The document's own curl examples send `Sec-WebSocket-Key: SGVsbG8sIHdvcmxkIQ==`, 13
 * bytes where RFC 6455 asks for 16, and the service answers 101; ws insists on 16. Such a
 * key is swapped for a valid one for ws, and the accept header is computed from the key
 * the client sent (the 'headers' hook), so the client's check still holds.
 */
const ORIGINAL_KEY = new WeakMap<IncomingMessage, string>();
const WS_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
const RFC_KEY = /^[+/0-9A-Za-z]{22}==$/;

function acceptFor(key: string): string {
  return createHash('sha1').update(key + WS_GUID).digest('base64');
}

function lenientKey(req: IncomingMessage): void {
  const key = req.headers['sec-websocket-key'];
  if (typeof key !== 'string' || RFC_KEY.test(key) || !/^[+/0-9A-Za-z]+={0,2}$/.test(key.trim())) return;
  ORIGINAL_KEY.set(req, key.trim());
  req.headers['sec-websocket-key'] = randomBytes(16).toString('base64');
}

export class PodPublisher {
  private readonly server: Server;
  private readonly wss: WebSocketServer;
  private readonly secret: Buffer;
  private readonly identity: PublisherIdentity;
  private readonly now: () => number;
  private readonly source: PublisherEventSource;
  readonly recorder: PodFactsRecorder;
  /** token id -> its open session (one per token). */
  private readonly sessions = new Map<string, StreamSession>();
  private sweepTimer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(private readonly o: PodPublisherOptions) {
    this.now = o.now ?? Date.now;
    this.secret = loadOrCreateSecret(o.config.secretFile);
    this.identity = { ...o.identity, cid: o.config.cid };
    this.source = o.source ?? new StoreEventSource(o.store, this.identity, this.now);
    this.recorder = new PodFactsRecorder(o.store, o.logger, this.now);
    const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
      // Plain HTTP(S) is not the protocol (the table's 404), except that a method other than GET is 405.
      const status = req.method !== 'GET' ? 405 : 404;
      res.writeHead(status, REASONS[status], { 'Content-Type': 'text/plain; charset=utf-8', Connection: 'close' });
      res.end(`${REASONS[status]}: ${status === 405 ? 'only GET' : 'a WebSocket upgrade to /v1/stream is required'}\n`);
    };
    this.server = o.config.tls
      ? createHttpsServer({ key: readFileSync(o.config.tls.key), cert: readFileSync(o.config.tls.cert) }, onRequest)
      : createHttpServer(onRequest);
    this.wss = new WebSocketServer({
      noServer: true,
      // Level 1: about a fifth less CPU per compressed event than zlib's default 6, for about
      // 3% more bytes (docs/benchmarks.md, "pod-ingest"); the CPU is what limits a busy gateway.
      perMessageDeflate: { serverNoContextTakeover: true, clientNoContextTakeover: true, zlibDeflateOptions: { level: 1 } },
    });
    this.server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => this.upgrade(req, socket, head));
    this.wss.on('headers', (headers: string[], req: IncomingMessage) => {
      const original = ORIGINAL_KEY.get(req);
      if (original === undefined) return;
      const i = headers.findIndex((h) => /^sec-websocket-accept:/i.test(h));
      if (i !== -1) headers[i] = `Sec-WebSocket-Accept: ${acceptFor(original)}`;
    });
  }

  async listen(): Promise<void> {
    const { host, port } = this.o.config.listen;
    await new Promise<void>((resolve, reject) => {
      // `mailbag start` prints this one line: it names the listener, as the SMTP and admin ones do.
      const onError = (err: NodeJS.ErrnoException) =>
        reject(new PodPublisherListenError(err.code ?? 'ERR_MAILBAG_POD_PUBLISHER_LISTEN', `pod publisher listener ${host}:${port}: ${err.message}`));
      this.server.once('error', onError);
      this.server.listen(port, host, () => {
        this.server.off('error', onError);
        resolve();
      });
    });
    await this.recorder.sweep();
    this.scheduleSweep();
  }

  private scheduleSweep(): void {
    if (this.closed) return;
    this.sweepTimer = setTimeout(() => {
      void this.recorder.sweep().finally(() => this.scheduleSweep());
    }, this.o.config.pollInterval);
    this.sweepTimer.unref();
  }

  address(): AddressInfo {
    return this.server.address() as AddressInfo;
  }

  get sessionCount(): number {
    return this.sessions.size;
  }

  /** Ends every session (each records where it dropped, for resume) and closes the listener. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.sweepTimer) clearTimeout(this.sweepTimer);
    for (const s of [...this.sessions.values()]) s.end(1001, 'server stopping');
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
  }

  private authorise(req: IncomingMessage, url: URL): { request: StreamRequest; claims: PodTokenClaims } {
    if (url.pathname !== '/v1/stream') throw new Refusal(404, `no such endpoint ${url.pathname}`);
    if (req.method !== 'GET') throw new Refusal(405, `method ${req.method ?? '?'} (only GET)`);
    let request: StreamRequest;
    try {
      request = parseStreamRequest(url.searchParams, this.now());
    } catch (err) {
      if (err instanceof BadStreamRequest) throw new Refusal(400, err.message);
      throw err;
    }
    const auth = req.headers.authorization;
    if (!auth?.trim()) throw new Refusal(401, 'missing or empty Authorization header');
    const m = /^(\S+)(?:\s+(.*))?$/.exec(auth.trim());
    if (m?.[1]?.toLowerCase() !== 'bearer') throw new Refusal(401, 'invalid type of access token (Bearer expected)');
    const token = m[2]?.trim();
    if (!token) throw new Refusal(401, 'missing or empty access token');
    let claims: PodTokenClaims;
    try {
      claims = verifyToken(this.secret, token, this.now());
    } catch (err) {
      if (err instanceof TokenError) throw new Refusal(401, `invalid or expired access token (${err.message})`);
      throw err;
    }
    if (request.cid !== this.identity.cid || claims.cid !== request.cid) throw new Refusal(401, `invalid clusterID ${JSON.stringify(request.cid)}`);
    if (this.sessions.has(claims.jti)) throw new Refusal(409, 'the access token is being used by another session');
    return { request, claims };
  }

  private upgrade(req: IncomingMessage, socket: Socket, head: Buffer): void {
    // A request that arrived before the stop and is handled after it: a session opened now
    // would outlive the stop (and the store, closed next, that it records its drop in).
    if (this.closed) {
      this.o.logger.info({ status: 503, reason: 'the server is stopping', client: socket.remoteAddress }, 'pod publisher: refused');
      return refuse(socket, 503, 'the server is stopping');
    }
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://publisher.invalid');
    } catch {
      return refuse(socket, 404, 'invalid URL');
    }
    let granted: { request: StreamRequest; claims: PodTokenClaims };
    try {
      granted = this.authorise(req, url);
    } catch (err) {
      if (!(err instanceof Refusal)) {
        this.o.logger.error({ err: { message: (err as Error).message } }, 'pod publisher: upgrade failed');
        socket.destroy();
        return;
      }
      this.o.logger.info({ status: err.status, reason: err.message, client: socket.remoteAddress }, 'pod publisher: refused');
      return refuse(socket, err.status, err.message);
    }
    const { request, claims } = granted;
    // claimed before the handshake completes, so a second upgrade racing this one gets 409
    const session = new StreamSession(this, request, claims.jti);
    this.sessions.set(claims.jti, session);
    // a handshake ws refuses (no Sec-WebSocket-Key, ...) never opens: free the token
    socket.once('close', () => {
      if (!session.started) this.ended(claims.jti, session);
    });
    lenientKey(req);
    this.wss.handleUpgrade(req, socket, head, (ws) => session.run(ws));
  }

  /** @internal the session's store, clock and identity */
  get ctx(): { store: Store; source: PublisherEventSource; now: () => number; pollMs: number; pingMs: number; logger: Logger } {
    const pingMs = this.o.config.pingInterval ?? DEFAULT_PING_INTERVAL_MS;
    return { store: this.o.store, source: this.source, now: this.now, pollMs: this.o.config.pollInterval, pingMs, logger: this.o.logger };
  }

  /** @internal */
  ended(tokenId: string, session: StreamSession): void {
    if (this.sessions.get(tokenId) === session) this.sessions.delete(tokenId);
  }
}

/**
 * The socket under a ws connection, to cork a run of frames into one write. ws keeps it
 * private; without it (another ws version) each frame is written on its own.
 */
function corkable(ws: WebSocket): { cork(): void; uncork(): void } | undefined {
  const socket = (ws as unknown as { _socket?: Partial<Socket> | null })._socket;
  return typeof socket?.cork === 'function' && typeof socket.uncork === 'function' ? (socket as Socket) : undefined;
}

/** One WebSocket session: sends events from its cursor, live (polling) or for an archive window. */
class StreamSession {
  private ws: WebSocket | undefined;
  /** Where the session stands in the source: after the last event sent (archive: none sent yet). */
  private cursor: string | undefined;
  /**
   * After the last event the client is known to have taken: a ping follows each batch, and
   * the client answers it only after the frames before it. A connection that dies without a
   * close frame loses what was in flight, so a live session resumes from here, not from
   * `cursor` (the replay is deduplicated by the consumer, as with PoD's own).
   */
  private acked: string | undefined;
  private readonly pendingAcks: Array<string | undefined> = [];
  private open = true;
  private wake: (() => void) | undefined;
  /** The source said it has new events since the last look (a source that can tell, `watch`). */
  private nudged = false;
  private unwatch: (() => void) | undefined;
  private keepalive: NodeJS.Timeout | undefined;

  constructor(
    private readonly owner: PodPublisher,
    private readonly request: StreamRequest,
    private readonly tokenId: string,
  ) {}

  get started(): boolean {
    return this.ws !== undefined;
  }

  run(ws: WebSocket): void {
    this.ws = ws;
    const { store, source, now, logger, pingMs } = this.owner.ctx;
    ws.on('close', (code) => this.finish(code));
    ws.on('error', () => ws.terminate());
    // A client that vanished without a close (a partition, a NAT that forgot the connection)
    // would hold its token for good on an idle stream, where nothing written can fail: the
    // consumer coming back on it would get 409 again and again. It is gone if it answered
    // nothing since the last ping while nothing of ours waits to be written to it (a slow
    // reader's pong is queued behind the events it has not read yet).
    let answered = true;
    const heard = () => (answered = true);
    ws.on('ping', heard);
    ws.on('message', heard);
    this.keepalive = setInterval(() => {
      if (!answered && ws.bufferedAmount === 0) {
        logger.info({ type: this.request.type, token: this.tokenId, pingIntervalMs: pingMs }, 'pod publisher: client gone (no answer to a ping); session dropped');
        ws.terminate();
        return;
      }
      answered = false;
      ws.ping(KEEPALIVE);
    }, pingMs);
    this.keepalive.unref();
    ws.on('pong', (data: Buffer) => {
      answered = true;
      // Only the empty ping after a batch acknowledges the events before it.
      if (data.length === 0 && this.pendingAcks.length) this.acked = this.pendingAcks.shift();
    });
    if (this.request.mode.kind === 'live') {
      const type = this.request.type;
      const drop = store.podPublisher.lastDrop(this.tokenId, type);
      const t = now();
      const resumed = drop && t - drop.dropped_at <= HOUR_MS && source.isCursor(drop.resume_from) ? drop.resume_from : undefined;
      // A drop over an hour ago: from the last hour; a new token: from now.
      this.cursor = resumed ?? (drop ? source.head(type, t - HOUR_MS) : source.head(type));
      this.unwatch = source.watch?.(() => {
        this.nudged = true;
        this.wake?.();
      });
    }
    this.acked = this.cursor;
    logger.info({ type: this.request.type, mode: this.request.mode.kind, token: this.tokenId }, 'pod publisher: session open');
    this.pump().catch((err: unknown) => {
      logger.error({ err: { message: (err as Error).message } }, 'pod publisher: session failed');
      this.end(1011, 'internal error');
    });
  }

  end(code: number, reason: string): void {
    if (!this.ws) return this.finish();
    if (this.ws.readyState === this.ws.OPEN) this.ws.close(code, reason);
    else this.ws.terminate();
    this.finish();
  }

  /**
   * `closeCode`: how the connection closed. A client that closes normally (1000, 1001, or a
   * close frame without a code) sends its close after every frame before it was taken, so
   * the session resumes after all it sent. Otherwise from the last acknowledged event: a
   * drop (1006), the server ending the session, or a client that failed on a frame (1009
   * message too big, 1007 not UTF-8, 1002, 1011, ...): it closes at once and the frames it
   * failed on, and those after it, were never taken.
   */
  private finish(closeCode?: number): void {
    if (!this.open) return;
    this.open = false;
    if (this.keepalive) clearInterval(this.keepalive);
    this.unwatch?.();
    this.wake?.();
    this.owner.ended(this.tokenId, this);
    const { store, now, logger } = this.owner.ctx;
    const resumeFrom = closeCode !== undefined && NORMAL_CLOSE.has(closeCode) ? this.cursor : this.acked;
    if (this.request.mode.kind !== 'live' || resumeFrom === undefined) return;
    try {
      store.podPublisher.saveDrop(this.tokenId, this.request.type, now(), resumeFrom);
    } catch (err) {
      // called from a socket event: thrown, it would be an uncaught exception
      logger.error(
        { type: this.request.type, token: this.tokenId, resumeFrom, err: { message: (err as Error).message, code: (err as { code?: unknown }).code } },
        "pod publisher: could not record where the session dropped; the token's next session will not resume from this drop",
      );
    }
  }

  /**
   * Sends `events` in order, advancing the cursor as each one is written. The frames of a
   * run are corked into one socket write (ws compresses each small message synchronously,
   * see docs/pod.md), instead of one write and one wait per event; a run ends at the
   * high-water mark, where the session waits for the reader. Resolves once the last event
   * is written; rejects if the socket fails.
   */
  private async sendAll(events: readonly SourcedEvent[]): Promise<void> {
    const ws = this.ws!;
    const socket = corkable(ws);
    let i = 0;
    while (this.open && i < events.length) {
      while (this.open && ws.bufferedAmount > HIGH_WATER) await new Promise((r) => setTimeout(r, 10));
      if (!this.open) return;
      // One wait per run: each frame's callback moves the cursor, the run settles with the last one.
      let pending = 0;
      let queued = false;
      let failure: Error | undefined;
      let settle!: () => void;
      const written = new Promise<void>((resolve) => (settle = resolve));
      const onWritten = (cursor: string) => (err?: Error) => {
        if (err) failure ??= err;
        else if (this.open && !failure) this.cursor = cursor;
        if (--pending === 0 && queued) settle();
      };
      socket?.cork();
      try {
        do {
          const ev = events[i++]!;
          pending++;
          ws.send(ev.payload, { binary: typeof ev.payload !== 'string' }, onWritten(ev.cursor));
        } while (i < events.length && ws.bufferedAmount <= HIGH_WATER);
      } finally {
        queued = true;
        socket?.uncork();
      }
      if (pending === 0) settle();
      await written;
      if (failure) throw failure;
    }
  }

  private async pump(): Promise<void> {
    const { pollMs } = this.owner.ctx;
    const mode = this.request.mode;
    while (this.open) {
      this.nudged = false;
      const moved = await this.sendBatch();
      if (!this.open) return;
      if (moved || this.nudged) continue;
      if (mode.kind === 'archive') return this.end(1000, 'archive window done');
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, pollMs);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wake = undefined;
    }
  }

  /** Sends the next batch after the cursor; false when the source had nothing more. */
  private async sendBatch(): Promise<boolean> {
    const { source } = this.owner.ctx;
    const mode = this.request.mode;
    const window = mode.kind === 'archive' ? { fromMs: mode.fromMs, toMs: mode.toMs } : undefined;
    const batch = await source.next(this.request.type, this.cursor, BATCH, window);
    await this.sendAll(batch.events);
    if (!this.open) return false;
    if (batch.cursor === this.cursor && !batch.events.length) return false;
    this.cursor = batch.cursor;
    if (batch.events.length && this.ws?.readyState === this.ws?.OPEN) {
      this.pendingAcks.push(this.cursor);
      this.ws!.ping();
    }
    return true;
  }
}

/** The publisher as a gateway component: /healthz shows its open sessions. */
export class PodPublisherComponent implements GatewayComponent {
  readonly name = 'podPublisher';
  private publisher: PodPublisher | undefined;

  constructor(private readonly create: () => PodPublisher) {}

  async start(): Promise<void> {
    const p = this.create();
    await p.listen();
    this.publisher = p;
  }

  async stop(): Promise<void> {
    const p = this.publisher;
    this.publisher = undefined;
    await p?.close();
  }

  get running(): PodPublisher | undefined {
    return this.publisher;
  }

  health(): ComponentHealth {
    return this.publisher ? { ok: true, sessions: this.publisher.sessionCount } : { ok: false, reason: 'not started' };
  }
}
