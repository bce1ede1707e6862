// Postfix's smtp-source (load generator) and smtp-sink (next hop that discards mail),
// driven as child processes. Both ship in the Debian `postfix` package; installing it
// must not leave a Postfix daemon running.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';

const SBIN = ['/usr/sbin', '/usr/local/sbin', '/usr/bin', '/usr/local/bin'];

export function findTool(name: string): string | undefined {
  for (const dir of [...(process.env.PATH ?? '').split(':'), ...SBIN]) {
    if (dir && existsSync(`${dir}/${name}`)) return `${dir}/${name}`;
  }
  return undefined;
}

const isRoot = () => typeof process.getuid === 'function' && process.getuid() === 0;

/** Returns the tool paths, installing postfix with apt-get when missing (root only); otherwise why not. */
export function ensurePostfixTools(): { source: string; sink: string } | string {
  let source = findTool('smtp-source');
  let sink = findTool('smtp-sink');
  if (source && sink) return { source, sink };
  if (!isRoot()) return 'smtp-source/smtp-sink missing and not root: install the postfix package (apt-get install postfix)';
  if (!findTool('apt-get')) return 'smtp-source/smtp-sink missing and apt-get is not available';
  process.stdout.write('installing postfix (for smtp-source and smtp-sink) with apt-get...\n');
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  // Pre-answer debconf so the install never prompts; "No configuration" keeps the daemon unconfigured.
  spawnSync('debconf-set-selections', { input: 'postfix postfix/main_mailer_type select No configuration\n', env });
  const wasRunning = postfixMasterRunning();
  const update = spawnSync('apt-get', ['update', '-qq'], { env, stdio: 'inherit', timeout: 300_000 });
  const install = spawnSync('apt-get', ['install', '-y', '-q', 'postfix'], { env, stdio: 'inherit', timeout: 600_000 });
  if (update.status !== 0 || install.status !== 0) return 'apt-get install postfix failed';
  // Package scripts may start the daemon where services are allowed to start; the benchmark only wants the tools.
  if (!wasRunning && postfixMasterRunning()) spawnSync(findTool('postfix') ?? 'postfix', ['stop'], { stdio: 'inherit' });
  source = findTool('smtp-source');
  sink = findTool('smtp-sink');
  return source && sink ? { source, sink } : 'postfix installed but smtp-source/smtp-sink not found';
}

function postfixMasterRunning(): boolean {
  const status = spawnSync(findTool('postfix') ?? 'postfix', ['status'], { stdio: 'ignore' });
  return status.status === 0;
}

/** A free loopback TCP port (tools that cannot bind port 0 themselves need one). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

export interface Sink {
  port: number;
  /** Messages received so far ("." seen). */
  received(): number;
  /** Resolves with the time (performance.now()) the count reached `n`; rejects after `timeoutMs`. */
  waitFor(n: number, timeoutMs: number): Promise<number>;
  stop(): Promise<void>;
}

/** smtp-sink on 127.0.0.1:port, discarding mail and counting messages (-c). */
export async function startSink(tool: string, port?: number): Promise<Sink> {
  const p = port ?? (await freePort());
  const args = ['-c', ...(isRoot() ? ['-u', 'nobody'] : []), `127.0.0.1:${p}`, '1024'];
  const child: ChildProcess = spawn(tool, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let count = 0;
  let tail = '';
  let waiter: { n: number; resolve: (t: number) => void } | undefined;
  child.stdout!.setEncoding('latin1');
  child.stdout!.on('data', (chunk: string) => {
    // -c rewrites one status line with \r: "sess=N quit=N mesg=N"
    const text = tail + chunk;
    const all = [...text.matchAll(/mesg=(\d+)/g)];
    if (all.length) count = Number(all[all.length - 1]![1]);
    tail = text.slice(-40);
    if (waiter && count >= waiter.n) {
      waiter.resolve(performance.now());
      waiter = undefined;
    }
  });
  let stderr = '';
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (c: string) => (stderr += c));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  await waitForPort(p, 5000, () => child.exitCode !== null, () => stderr);
  return {
    port: p,
    received: () => count,
    waitFor(n, timeoutMs) {
      if (count >= n) return Promise.resolve(performance.now());
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`sink got ${count} of ${n} messages within ${timeoutMs} ms`)), timeoutMs);
        waiter = {
          n,
          resolve: (t) => {
            clearTimeout(timer);
            resolve(t);
          },
        };
      });
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}

async function waitForPort(port: number, timeoutMs: number, dead: () => boolean, why: () => string): Promise<void> {
  const { connect } = await import('node:net');
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (dead()) throw new Error(`smtp-sink exited: ${why()}`);
    const ok = await new Promise<boolean>((r) => {
      const s = connect(port, '127.0.0.1', () => {
        s.destroy();
        r(true);
      });
      s.on('error', () => r(false));
    });
    if (ok) return;
    if (Date.now() > end) throw new Error(`smtp-sink did not listen on ${port}: ${why()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export interface SourceRun {
  /** Wall time from start to exit, ms. */
  ms: number;
  started: number;
  ok: boolean;
  stderr: string;
}

/**
 * smtp-source: `count` messages of `bytes` payload over `sessions` parallel sessions.
 * `reuse` is smtp-source's -d (keep the connection for the next message); without
 * it every message opens a new connection.
 */
export function runSource(
  tool: string,
  o: { port: number; sessions: number; count: number; bytes: number; reuse: boolean; timeoutMs: number; to: string; from: string },
): Promise<SourceRun> {
  const args = ['-s', String(o.sessions), '-m', String(o.count), '-l', String(o.bytes), '-f', o.from, '-t', o.to, '-M', 'bench.client.test'];
  if (o.reuse) args.push('-d');
  args.push(`127.0.0.1:${o.port}`);
  const started = performance.now();
  const child = spawn(tool, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (c: string) => (stderr += c));
  const timer = setTimeout(() => {
    stderr += `\n(killed after ${o.timeoutMs} ms)`;
    child.kill('SIGKILL');
  }, o.timeoutMs);
  return new Promise((resolve) => {
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ ms: performance.now() - started, started, ok: code === 0, stderr: stderr.trim() });
    });
  });
}
