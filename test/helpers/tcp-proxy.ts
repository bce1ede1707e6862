// A loopback TCP proxy in front of a WebSocket server, for tests: it records each
// request (path, query, Authorization, offered extensions) and the server's answer,
// counts the server's WebSocket frames and the data frames the client acknowledged (the
// publisher's empty ping after a batch, answered by an empty pong that reached the server),
// and plays the network: `drop()` cuts every
// connection without a close frame, `hold()` stops forwarding on the open ones (what is
// sent meanwhile is lost when they are cut). The target port may change (a restarted server).
import { createServer, connect, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';

export interface ProxiedConnection {
  /** The clock's time when the request came. */
  at: number;
  path: string;
  query: URLSearchParams;
  authorization: string | undefined;
  extensions: string | undefined;
  /** The server's HTTP status (101 for an upgrade); undefined until it answered. */
  status: number | undefined;
  open: boolean;
  /** Data frames (text, binary) the server sent, forwarded or not; pings it sent. */
  dataFrames: number;
  pings: number;
  /**
   * Data frames the client acknowledged: those before an empty ping (the publisher's
   * ping after a batch) whose empty pong was forwarded to the server. Equal to
   * `dataFrames` once the server knows the client took everything it sent.
   */
  ackedDataFrames: number;
  /** What `hold` stopped: bytes to the server, to the client. */
  held: { toServer: boolean; toClient: boolean };
}

/** Counts the frames of a WebSocket byte stream (either way: a client's frames are masked). */
class FrameCounter {
  /** The start of a frame header cut by a chunk boundary. */
  private pending = Buffer.alloc(0);
  /** Payload bytes of the current frame still to come. */
  private skip = 0;

  constructor(private readonly onFrame: (opcode: number, payloadLength: number) => void) {}

  push(chunk: Buffer): void {
    const buf = this.pending.length ? Buffer.concat([this.pending, chunk]) : chunk;
    this.pending = Buffer.alloc(0);
    let at = 0;
    while (at < buf.length) {
      if (this.skip > 0) {
        const n = Math.min(this.skip, buf.length - at);
        this.skip -= n;
        at += n;
        continue;
      }
      if (buf.length - at < 2) break;
      const short = buf[at + 1]! & 0x7f;
      const headerLen = 2 + (short === 126 ? 2 : short === 127 ? 8 : 0) + (buf[at + 1]! & 0x80 ? 4 : 0);
      if (buf.length - at < headerLen) break;
      this.skip = short === 126 ? buf.readUInt16BE(at + 2) : short === 127 ? Number(buf.readBigUInt64BE(at + 2)) : short;
      this.onFrame(buf[at]! & 0x0f, this.skip);
      at += headerLen;
    }
    if (at < buf.length) this.pending = Buffer.from(buf.subarray(at));
  }
}

export interface TcpProxy {
  url: string;
  connections: ProxiedConnection[];
  /** Cuts every open connection (no close frame, what is in flight is lost). */
  drop(): void;
  /**
   * Stops forwarding on the open connections until they are cut: both ways, or only what
   * goes to the server (the client gets events, its pongs are lost) or to the client.
   */
  hold(direction?: 'both' | 'toServer' | 'toClient'): void;
  close(): Promise<void>;
}

/**
 * Cuts a connection the way a network failure does: a reset, no FIN. A socket whose own
 * FIN is already under way (it ended, or its peer's FIN ended it) is destroyed instead:
 * Node's resetAndDestroy() fails there with EINVAL and leaves the handle open for good, so
 * the test process then spins in its exit cleanup and never ends.
 */
export function cut(socket: Socket): void {
  if (socket.destroyed) return;
  if (socket.writableEnded) socket.destroy();
  else socket.resetAndDestroy();
}

function headerValue(head: string, name: string): string | undefined {
  const m = new RegExp(`^${name}:[ \\t]*(.*)$`, 'im').exec(head);
  return m?.[1]?.trim();
}

export async function startTcpProxy(targetPort: () => number | undefined, now: () => number = Date.now): Promise<TcpProxy> {
  const pairs = new Set<{ client: Socket; upstream: Socket; rec: ProxiedConnection }>();
  const connections: ProxiedConnection[] = [];
  const server: Server = createServer((client) => {
    const port = targetPort();
    const rec: ProxiedConnection = { at: now(), path: '', query: new URLSearchParams(), authorization: undefined, extensions: undefined, status: undefined, open: true, dataFrames: 0, pings: 0, ackedDataFrames: 0, held: { toServer: false, toClient: false } };
    connections.push(rec);
    if (port === undefined) return void client.destroy();
    const upstream = connect(port, '127.0.0.1');
    const pair = { client, upstream, rec };
    pairs.add(pair);
    const end = () => {
      rec.open = false;
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
    // dataFrames at each empty ping the server sent, oldest first, until its pong comes
    const pingMarks: number[] = [];
    let ackedInChunk: number | undefined;
    const clientFrames = new FrameCounter((opcode, payloadLength) => {
      if (opcode !== 10 || payloadLength !== 0) return;
      ackedInChunk = pingMarks.shift() ?? ackedInChunk;
    });
    /** Forwards bytes from the client unless held; a pong in them acknowledges once forwarded. */
    const toServer = (c: Buffer) => {
      ackedInChunk = undefined;
      clientFrames.push(c);
      if (rec.held.toServer) return;
      upstream.write(c);
      if (ackedInChunk !== undefined) rec.ackedDataFrames = ackedInChunk;
    };
    let request = '';
    client.on('data', (c: Buffer) => {
      if (rec.path) {
        toServer(c);
        return;
      }
      if (request.length < 65536) {
        request += c.toString('latin1');
        const headEnd = request.indexOf('\r\n\r\n');
        if (headEnd !== -1) {
          // no frame shares a chunk with the request: a client sends its first after the 101
          const head = request.slice(0, headEnd);
          const target = /^\S+ (\S+)/.exec(head)?.[1] ?? '/';
          const url = new URL(target, 'http://proxy.invalid');
          rec.path = url.pathname;
          rec.query = url.searchParams;
          rec.authorization = headerValue(head, 'authorization');
          rec.extensions = headerValue(head, 'sec-websocket-extensions');
        }
      }
      if (!rec.held.toServer) upstream.write(c);
    });
    let response: Buffer | undefined = Buffer.alloc(0);
    const frames = new FrameCounter((opcode, payloadLength) => {
      if (opcode === 1 || opcode === 2) rec.dataFrames++;
      else if (opcode === 9) {
        rec.pings++;
        if (payloadLength === 0) pingMarks.push(rec.dataFrames);
      }
    });
    upstream.on('data', (c: Buffer) => {
      if (response !== undefined) {
        response = Buffer.concat([response, c]);
        const headEnd = response.indexOf('\r\n\r\n');
        if (headEnd !== -1) {
          rec.status = Number(/^HTTP\/1\.1 (\d{3})/.exec(response.subarray(0, headEnd).toString('latin1'))?.[1]);
          const rest = response.subarray(headEnd + 4);
          response = undefined;
          if (rec.status === 101 && rest.length) frames.push(rest);
        }
      } else if (rec.status === 101) {
        frames.push(c);
      }
      if (!rec.held.toClient) client.write(c);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const drop = () => {
    for (const p of [...pairs]) {
      cut(p.client);
      cut(p.upstream);
    }
  };
  return {
    url: `ws://127.0.0.1:${port}/`,
    connections,
    drop,
    hold(direction = 'both') {
      for (const p of pairs) p.rec.held = { toServer: direction !== 'toClient', toClient: direction !== 'toServer' };
    },
    async close() {
      drop();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
