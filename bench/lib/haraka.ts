// Haraka, the Node.js MTA operators compare mailbag with, as a relay for the same
// benchmark: installed from npm into a cache directory under the OS temp dir (reused by
// later runs), configured to accept example.test and forward to the sink with its
// queue/smtp_forward plugin. Haraka forwards during DATA (before its 250): it has no
// durable queue, so it does less work per message than mailbag.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { processCpuSeconds } from '../../test/helpers/gateway-process.js';
import { join } from 'node:path';

const HARAKA_RANGE = '3';

export interface HarakaInstall {
  version: string;
  script: string;
}

/** Installs Haraka (once) into a cache dir; a string says why it is unavailable. */
export function ensureHaraka(): HarakaInstall | string {
  const dir = join(tmpdir(), 'mailbag-bench-haraka');
  const pkg = join(dir, 'node_modules', 'Haraka', 'package.json');
  if (!existsSync(pkg)) {
    mkdirSync(dir, { recursive: true });
    if (!existsSync(join(dir, 'package.json'))) writeFileSync(join(dir, 'package.json'), '{"name":"mailbag-bench-haraka","private":true}\n');
    process.stdout.write(`installing Haraka@${HARAKA_RANGE} into ${dir} (npm)...\n`);
    // --ignore-scripts: the only install script is an optional syslog addon the benchmark does not use.
    const r = spawnSync('npm', ['install', '--no-audit', '--no-fund', '--ignore-scripts', `Haraka@${HARAKA_RANGE}`], {
      cwd: dir,
      stdio: ['ignore', 'ignore', 'pipe'],
      encoding: 'utf8',
      timeout: 300_000,
    });
    if (r.status !== 0 || !existsSync(pkg)) return `npm install Haraka failed: ${(r.stderr ?? r.error?.message ?? '').trim().split('\n').pop()}`;
  }
  const version = (JSON.parse(readFileSync(pkg, 'utf8')) as { version: string }).version;
  return { version, script: join(dir, 'node_modules', 'Haraka', 'bin', 'haraka') };
}

export interface HarakaRelay {
  pid: number;
  port: number;
  peakRssBytes(): number | undefined;
  /** CPU seconds of the launcher and its children. */
  cpuSeconds(): number | undefined;
  stop(): Promise<void>;
}

export async function startHaraka(install: HarakaInstall, o: { port: number; sinkPort: number; domain: string; workDir: string }): Promise<HarakaRelay> {
  const inst = join(o.workDir, 'haraka');
  const cfg = join(inst, 'config');
  rmSync(inst, { recursive: true, force: true });
  mkdirSync(cfg, { recursive: true });
  writeFileSync(join(inst, 'package.json'), '{"name":"haraka-bench-instance","private":true}\n');
  writeFileSync(join(cfg, 'plugins'), 'rcpt_to.in_host_list\nqueue/smtp_forward\n');
  writeFileSync(join(cfg, 'host_list'), `${o.domain}\n`);
  writeFileSync(join(cfg, 'me'), 'haraka.bench.test\n');
  // Single process (no cluster), like mailbag; warn-level logs (Haraka's info level logs several lines per message).
  writeFileSync(join(cfg, 'smtp.ini'), `listen=127.0.0.1:${o.port}\n`);
  writeFileSync(join(cfg, 'log.ini'), '[main]\nlevel=warn\n');
  // connection.ini as `haraka -i` writes it: the banner and limits come from here.
  writeFileSync(
    join(cfg, 'connection.ini'),
    '[main]\n[haproxy]\nhosts[] =\n[headers]\nmax_lines=1000\nmax_received=100\n[max]\nbytes=26214400\nmime_parts=1000\n' +
      'line_length=512\ndata_line_length=992\n[message]\nhelo=Haraka is at your service.\nclose=closing connection.\n[uuid]\nbanner_chars=6\ndeny_chars=0\n',
  );
  writeFileSync(join(cfg, 'smtp_forward.ini'), `host=127.0.0.1\nport=${o.sinkPort}\nenable_tls=false\nenable_outbound=false\n`);
  // Own process group: bin/haraka runs the server in a child process, and stop() must end both.
  const child: ChildProcess = spawn(process.execPath, [install.script, '-c', inst], { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
  let stderr = '';
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (c: string) => (stderr = (stderr + c).slice(-2000)));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const end = Date.now() + 20_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`haraka exited: ${stderr}`);
    const up = await new Promise<boolean>((r) => {
      const s = connect(o.port, '127.0.0.1', () => {
        s.destroy();
        r(true);
      });
      s.on('error', () => r(false));
    });
    if (up) break;
    if (Date.now() > end) {
      child.kill('SIGKILL');
      throw new Error(`haraka did not listen within 20 s: ${stderr}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  const pid = child.pid!;
  return {
    pid,
    port: o.port,
    /** The largest VmHWM among the launcher and its children (the SMTP server process). */
    peakRssBytes() {
      let peak: number | undefined;
      for (const p of [pid, ...descendants(pid)]) {
        const v = vmHwm(p);
        if (v !== undefined && (peak === undefined || v > peak)) peak = v;
      }
      return peak;
    },
    cpuSeconds() {
      let sum: number | undefined;
      for (const p of [pid, ...descendants(pid)]) {
        const v = processCpuSeconds(p);
        if (v !== undefined) sum = (sum ?? 0) + v;
      }
      return sum;
    },
    async stop() {
      const group = (signal: NodeJS.Signals) => {
        try {
          process.kill(-pid, signal);
        } catch {
          // already gone
        }
      };
      if (child.exitCode === null && child.signalCode === null) {
        group('SIGINT'); // Haraka shuts down gracefully on SIGINT
        const force = setTimeout(() => group('SIGKILL'), 5000);
        await exited;
        clearTimeout(force);
      }
      group('SIGKILL'); // any child left in the group
    },
  };
}

function vmHwm(pid: number): number | undefined {
  try {
    const m = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

function descendants(pid: number): number[] {
  try {
    const kids = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
    return kids.flatMap((k) => [k, ...descendants(k)]);
  } catch {
    return [];
  }
}
