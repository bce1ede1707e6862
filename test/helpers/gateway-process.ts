// Runs `mailbag start --config FILE` as a child process, the way operators run it,
// for tests and benchmarks that must kill it (SIGKILL) or measure its memory.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { connect } from 'node:net';

const repoRoot = fileURLToPath(new URL('../../', import.meta.url));

export interface GatewayProcess {
  pid: number;
  smtpPort: number;
  /** The last log lines (stdout and stderr), for failure messages. */
  recentLogs(): string[];
  /** Every parsed JSON log line seen so far (kept only when `keepLogs` is set). */
  logs: Array<Record<string, unknown>>;
  /** Peak resident set size so far (VmHWM), where /proc is available. */
  peakRssBytes(): number | undefined;
  /** CPU time (user + system) used so far, in seconds, where /proc is available. */
  cpuSeconds(): number | undefined;
  /** Resolves when the process has exited. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGTERM (graceful), then SIGKILL after `graceMs`. */
  stop(graceMs?: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGKILL: a crash. */
  kill(): Promise<void>;
}

export interface SpawnGatewayOptions {
  /** How long to wait for the `listening` line (default 60 s: a start on a loaded machine can take many seconds). */
  startTimeoutMs?: number;
  /** Extra node flags, e.g. `--cpu-prof`. */
  nodeArgs?: string[];
  keepLogs?: boolean;
  env?: NodeJS.ProcessEnv;
  /**
   * The SMTP port the config names, when it is fixed: the gateway counts as started once
   * the port accepts a connection, so log levels that hide the `listening` line work too.
   */
  port?: number;
  /**
   * Run the compiled build (`dist/`, what `npm start` runs; the caller builds it first)
   * instead of the sources through tsx, whose loader also turns on source-mapped stack
   * traces: every error's stack a library reads (a client's ECONNRESET) then costs a
   * source-map lookup that the installed gateway never pays.
   */
  build?: boolean;
}

export function spawnGateway(configFile: string, opts: SpawnGatewayOptions = {}): Promise<GatewayProcess> {
  const child: ChildProcess = spawn(
    process.execPath,
    [...(opts.nodeArgs ?? []), ...(opts.build ? ['dist/cli/main.js'] : ['--import=tsx', 'src/cli/main.ts']), 'start', '--config', configFile],
    { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...opts.env } },
  );
  const recent: string[] = [];
  const logs: Array<Record<string, unknown>> = [];
  const remember = (line: string) => {
    recent.push(line);
    if (recent.length > 50) recent.shift();
  };
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
  });
  createInterface({ input: child.stderr! }).on('line', remember);

  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`gateway did not log "listening" within ${opts.startTimeoutMs ?? 60_000} ms:\n${recent.join('\n')}`));
    }, opts.startTimeoutMs ?? 60_000);
    void exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`gateway exited (${code ?? signal}) before listening:\n${recent.join('\n')}`));
    });
    let started = false;
    const ready = (smtpPort: number) => {
      if (started) return;
      started = true;
      clearTimeout(timer);
      const pid = child.pid!;
      resolve({
        pid,
        smtpPort,
        logs,
        recentLogs: () => [...recent],
        peakRssBytes: () => {
          try {
            const m = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
            return m ? Number(m[1]) * 1024 : undefined;
          } catch {
            return undefined;
          }
        },
        cpuSeconds: () => processCpuSeconds(pid),
        exited,
        async stop(graceMs = 10_000) {
          if (child.exitCode !== null || child.signalCode !== null) return exited;
          child.kill('SIGTERM');
          const force = setTimeout(() => child.kill('SIGKILL'), graceMs);
          const result = await exited;
          clearTimeout(force);
          return result;
        },
        async kill() {
          if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
          await exited;
        },
      });
    };
    createInterface({ input: child.stdout! }).on('line', (line) => {
      remember(line);
      if (started && !opts.keepLogs) return; // benchmarks: do not spend the parent's CPU on log lines
      let entry: Record<string, unknown> | undefined;
      try {
        entry = JSON.parse(line) as Record<string, unknown>;
      } catch {
        return;
      }
      if (opts.keepLogs) logs.push(entry);
      if (entry.msg === 'listening' && typeof entry.smtp === 'string') ready(Number(entry.smtp.slice(entry.smtp.lastIndexOf(':') + 1)));
    });
    if (opts.port !== undefined) {
      const port = opts.port;
      const poll = () => {
        if (started || child.exitCode !== null || child.signalCode !== null) return;
        const s = connect(port, '127.0.0.1', () => {
          s.destroy();
          ready(port);
        });
        s.on('error', () => setTimeout(poll, 100));
      };
      poll();
    }
  });
}

/** utime + stime from /proc/PID/stat (clock ticks, 100 per second on Linux). */
export function processCpuSeconds(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // fields[0] is field 3 (state); utime and stime are fields 14 and 15
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return undefined;
  }
}
