// A small PoD Log API server for consumer tests, following the document: GET
// /v1/stream?cid=&type=[&sinceTime=&toTime=] with `Authorization: Bearer`, the error
// table (400 bad query, 401 bad token or cid, 404 other paths, 405 other methods, 409 the
// token in use), permessage-deflate with both no-context-takeover options, live mode
// (resumes from a drop within an hour, else starts an hour back) and archive mode (whole
// hours, then closed with 1000). Its clock is the test's, so hours can pass at once.
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';

const HOUR = 3_600_000;
const STATUS_TEXT: Record<number, string> = { 400: 'Bad Request', 401: 'Unauthorized', 404: 'Not Found', 405: 'Method Not Allowed', 409: 'Conflict' };
const PARAM_TIME = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?)([+-])(\d{2})(\d{2})$/;

export interface LogEntry {
  type: 'message' | 'maillog';
  tsMs: number;
  payload: string | Buffer;
  /** Sent as a binary frame. */
  binary?: boolean;
}

export interface RequestRecord {
  mode: 'live' | 'archive' | 'refused';
  status: number;
  token: string | undefined;
  sinceTime?: string;
  toTime?: string;
  extensions: string | undefined;
  at: number;
}

function parseParamTime(v: string): number | undefined {
  const m = PARAM_TIME.exec(v);
  if (!m) return undefined;
  const ms = Date.parse(`${m[1]}${m[2]}${m[3]}:${m[4]}`);
  return Number.isNaN(ms) ? undefined : ms;
}

/** The service's state: it outlives a server restart, like the real service's does. */
export class PodLogService {
  readonly entries: LogEntry[] = [];
  readonly requests: RequestRecord[] = [];
  /** Tokens in a session now (a test can hold one to make the consumer meet a 409). */
  readonly busy = new Set<string>();
  private readonly lastDrop = new Map<string, number>();
  readonly live = new Set<{ ws: WebSocket; type: string; token: string }>();

  constructor(
    readonly now: () => number,
    readonly tokens: ReadonlyMap<string, string>,
    /** How far before a drop a resumed live session starts again (replays are normal). */
    readonly replayOverlapMs = 0,
  ) {}

  /** Appends to the log and sends it to the live sessions of its type. */
  publish(entry: LogEntry): void {
    this.entries.push(entry);
    for (const s of this.live) if (s.type === entry.type) s.ws.send(entry.payload, { binary: entry.binary === true });
  }

  /** A network drop of every live session (no close frame). */
  dropLive(): void {
    for (const s of this.live) s.ws.terminate();
  }

  sessionEnded(token: string, live: boolean): void {
    this.busy.delete(token);
    if (live) this.lastDrop.set(token, this.now());
  }

  liveStart(token: string): number {
    const drop = this.lastDrop.get(token);
    const now = this.now();
    return drop !== undefined && now - drop <= HOUR ? drop - this.replayOverlapMs : now - HOUR;
  }
}

export interface PodLogServer {
  port: number;
  url: string;
  close(): Promise<void>;
}

export async function startPodLogServer(service: PodLogService, opts: { port?: number; answerPings?: boolean } = {}): Promise<PodLogServer> {
  const wss = new WebSocketServer({
    noServer: true,
    perMessageDeflate: { clientNoContextTakeover: true, serverNoContextTakeover: true },
    autoPong: opts.answerPings !== false,
    maxPayload: 1024,
  });
  const server: Server = createServer((_req, res) => {
    res.writeHead(404).end('Not Found');
  });
  const sockets = new Set<Socket>();
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const auth = /^Bearer (\S+)$/.exec(req.headers.authorization ?? '')?.[1];
    const extensions = req.headers['sec-websocket-extensions'];
    const sinceTime = url.searchParams.get('sinceTime') ?? undefined;
    const toTime = url.searchParams.get('toTime') ?? undefined;
    const record = (mode: RequestRecord['mode'], status: number) =>
      service.requests.push({ mode, status, token: auth, extensions, at: service.now(), ...(sinceTime ? { sinceTime } : {}), ...(toTime ? { toTime } : {}) });
    const refuse = (status: number) => {
      record('refused', status);
      const body = STATUS_TEXT[status] ?? 'Error';
      socket.end(`HTTP/1.1 ${status} ${body}\r\nContent-Type: text/plain\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`);
    };
    if (url.pathname !== '/v1/stream') return refuse(404);
    if (req.method !== 'GET') return refuse(405);
    const cid = url.searchParams.get('cid');
    const type = url.searchParams.get('type');
    if (!cid || (type !== 'message' && type !== 'maillog')) return refuse(400);
    const since = sinceTime === undefined ? undefined : parseParamTime(sinceTime);
    const to = toTime === undefined ? undefined : parseParamTime(toTime);
    if ((sinceTime !== undefined && since === undefined) || (toTime !== undefined && to === undefined)) return refuse(400);
    if (to !== undefined && (since === undefined || to <= since)) return refuse(400);
    if (auth === undefined || service.tokens.get(auth) !== cid) return refuse(401);
    if (service.busy.has(auth)) return refuse(409);
    service.busy.add(auth);
    const archive = since !== undefined;
    record(archive ? 'archive' : 'live', 101);
    wss.handleUpgrade(req, socket, head, (ws) => {
      if (archive) {
        const from = Math.floor(since / HOUR) * HOUR;
        const until = Math.ceil((to ?? service.now()) / HOUR) * HOUR;
        ws.on('close', () => service.sessionEnded(auth, false));
        for (const e of service.entries) if (e.type === type && e.tsMs >= from && e.tsMs < until) ws.send(e.payload, { binary: e.binary === true });
        ws.close(1000, 'archive range done');
        return;
      }
      const session = { ws, type, token: auth };
      ws.on('close', () => {
        service.live.delete(session);
        service.sessionEnded(auth, true);
      });
      const start = service.liveStart(auth);
      for (const e of service.entries) if (e.type === type && e.tsMs >= start) ws.send(e.payload, { binary: e.binary === true });
      service.live.add(session);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    url: `ws://127.0.0.1:${port}/`,
    async close() {
      for (const c of wss.clients) c.terminate();
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      wss.close();
    },
  };
}
