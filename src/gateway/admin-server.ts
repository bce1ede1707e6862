// The admin HTTP listener: /healthz for load balancers and orchestrators, /metrics for
// Prometheus. node:http only; it serves two read-only documents and nothing else, and
// binds to loopback unless the operator configures otherwise.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { GatewayMetrics } from './metrics.js';

export type HealthReport = { ok: boolean } & Record<string, unknown>;

export interface AdminServerOptions {
  host: string;
  port: number;
  metrics: GatewayMetrics;
  /** Called per /healthz request; `ok: false` (or a throw) answers 503. */
  health: () => HealthReport;
}

export interface AdminServer {
  address(): AddressInfo;
  close(): Promise<void>;
}

export class AdminServerError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.name = 'AdminServerError';
    this.code = code;
  }
}

export function startAdminServer(opts: AdminServerOptions): Promise<AdminServer> {
  const server = createServer((req, res) => {
    handle(req, res, opts).catch((err: unknown) => {
      if (!res.headersSent) sendJson(res, 500, { ok: false, error: (err as Error).message ?? String(err) });
      else res.destroy();
    });
  });
  // Scrapers and probes send tiny requests; do not let a slow client hold a socket for minutes.
  server.headersTimeout = 10_000;
  server.requestTimeout = 10_000;

  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => {
      reject(new AdminServerError(err.code ?? 'ERR_ADMIN_LISTEN', `admin listener ${opts.host}:${opts.port}: ${err.message}`));
    };
    server.once('error', onError);
    server.listen(opts.port, opts.host, () => {
      server.off('error', onError);
      resolve({
        address: () => server.address() as AddressInfo,
        close: () =>
          new Promise<void>((done) => {
            server.close(() => done());
            server.closeAllConnections();
          }),
      });
    });
  });
}

async function handle(req: IncomingMessage, res: ServerResponse, opts: AdminServerOptions): Promise<void> {
  const path = (req.url ?? '/').split('?')[0];
  if (path !== '/healthz' && path !== '/metrics') {
    sendJson(res, 404, { ok: false, error: 'not found' });
    return;
  }
  if (req.method !== 'GET') {
    res.setHeader('Allow', 'GET');
    sendJson(res, 405, { ok: false, error: `method ${req.method} not allowed` });
    return;
  }
  if (path === '/healthz') {
    let report: HealthReport;
    try {
      report = opts.health();
    } catch (err) {
      report = { ok: false, error: (err as Error).message ?? String(err) };
    }
    sendJson(res, report.ok ? 200 : 503, report);
    return;
  }
  const body = await opts.metrics.registry.metrics();
  res.writeHead(200, { 'Content-Type': opts.metrics.registry.contentType, 'Cache-Control': 'no-store' });
  res.end(body);
}

function sendJson(res: ServerResponse, status: number, value: unknown): void {
  const body = JSON.stringify(value) + '\n';
  res.writeHead(status, {
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': Buffer.byteLength(body),
    'Cache-Control': 'no-store',
  });
  res.end(body);
}
