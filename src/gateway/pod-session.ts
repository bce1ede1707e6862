// One WebSocket session with a PoD Log API server (live or archive), as the document
// describes it: `Authorization: Bearer`, permessage-deflate with both no-context-takeover
// options, one JSON event per message (text or binary frames). Resolves with how it ended.
import WebSocket from 'ws';

export type SessionEnd =
  /** The server refused the handshake with this HTTP status. */
  | { kind: 'refused'; status: number; body: string }
  /** The server closed an open session (an archive session closes with 1000 when its range is done). */
  | { kind: 'closed'; code: number; reason: string }
  /** Network error, handshake timeout, missed pong: the connection is gone. */
  | { kind: 'failed'; upgraded: boolean; message: string }
  /** `signal` aborted it (the gateway is stopping, or the store failed). */
  | { kind: 'aborted'; upgraded: boolean };

/** Stops and restarts the reading of an open session: a paused socket backs up to the server. */
export interface SessionFlow {
  pause(): void;
  resume(): void;
}

export interface SessionOptions {
  url: string;
  token: string;
  /** Events up to this size are ingested; ws drops the connection on a message over 4 times it. */
  maxEventBytes: number;
  pingIntervalMs: number;
  connectTimeoutMs: number;
  signal: AbortSignal;
  /** The session is open; `flow` pauses and resumes reading from it (backpressure). */
  onOpen?(flow: SessionFlow): void;
  /** The server answered a ping: the connection was alive at this moment. */
  onPong?(): void;
  /** Called for every message, text or binary, as its bytes. */
  onPayload(payload: Buffer): void;
}

/** The largest message ws assembles; beyond it the connection is closed (1009), never a payload held whole. */
export function hardPayloadLimit(maxEventBytes: number): number {
  return maxEventBytes * 4;
}

function asBuffer(data: WebSocket.RawData): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.from(data);
}

export function runSession(opts: SessionOptions): Promise<SessionEnd> {
  return new Promise((resolve) => {
    let upgraded = false;
    let settled = false;
    let pinger: NodeJS.Timeout | undefined;
    const ws = new WebSocket(opts.url, {
      headers: { Authorization: `Bearer ${opts.token}` },
      perMessageDeflate: { clientNoContextTakeover: true, serverNoContextTakeover: true },
      maxPayload: hardPayloadLimit(opts.maxEventBytes),
      handshakeTimeout: opts.connectTimeoutMs,
      followRedirects: false,
      // A text frame that is not UTF-8 would make ws fail the connection (1007), and the
      // server would send it again after every reconnect: the stream would stall on it for
      // good. Ingest checks UTF-8 itself and dead-letters such a payload with its reason.
      skipUTF8Validation: true,
    });
    const finish = (end: SessionEnd) => {
      if (settled) return;
      settled = true;
      if (pinger) clearInterval(pinger);
      opts.signal.removeEventListener('abort', onAbort);
      resolve(end);
    };
    let aborting = false;
    const onAbort = () => {
      aborting = true;
      if (ws.readyState !== WebSocket.OPEN) {
        finish({ kind: 'aborted', upgraded });
        ws.terminate();
        return;
      }
      // Ends when the server has seen the close: reconnecting sooner would meet our own
      // session still holding the token (409).
      ws.close(1000, 'client stopping');
      setTimeout(() => ws.terminate(), opts.connectTimeoutMs).unref();
    };
    if (opts.signal.aborted) {
      onAbort();
      return;
    }
    opts.signal.addEventListener('abort', onAbort);

    ws.on('unexpected-response', (req, res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        if (size < 4096) chunks.push(c);
        size += c.length;
      });
      const done = () => {
        finish({ kind: 'refused', status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8').slice(0, 4096).trim() });
        req.destroy();
      };
      res.on('end', done);
      res.on('error', done);
      res.on('close', done);
    });
    ws.on('open', () => {
      upgraded = true;
      opts.onOpen?.({ pause: () => ws.pause(), resume: () => ws.resume() });
      // A pong must come back before the next ping; none means the connection is dead
      // even if TCP has not noticed (idle connections are dropped silently).
      let awaitingPong = false;
      ws.on('pong', () => {
        awaitingPong = false;
        opts.onPong?.();
      });
      pinger = setInterval(() => {
        if (awaitingPong) {
          finish({ kind: 'failed', upgraded, message: `no pong within ${opts.pingIntervalMs} ms` });
          ws.terminate();
          return;
        }
        awaitingPong = true;
        ws.ping();
      }, opts.pingIntervalMs);
      pinger.unref();
    });
    ws.on('message', (data) => {
      // Still taken while our close is under way: the server counts them as sent.
      if (!settled) opts.onPayload(asBuffer(data));
    });
    ws.on('error', (err: Error & { code?: string }) => {
      // The server sends such a message again after every reconnect: say what would let it through.
      const message =
        err.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH'
          ? `a message over ${hardPayloadLimit(opts.maxEventBytes)} bytes (4 x pod.maxEventBytes) was refused; the server sends it again after each reconnect, so the stream stalls on it until pod.maxEventBytes is raised`
          : err.message;
      finish(aborting ? { kind: 'aborted', upgraded } : { kind: 'failed', upgraded, message });
    });
    ws.on('close', (code, reason) => {
      if (aborting) finish({ kind: 'aborted', upgraded });
      else if (upgraded) finish({ kind: 'closed', code, reason: reason.toString('utf8') });
      else finish({ kind: 'failed', upgraded, message: `connection closed before the handshake finished (${code})` });
    });
  });
}
