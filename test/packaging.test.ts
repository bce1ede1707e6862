// How mailbag is run outside a test: `npm start` (and stopping it with a signal), the
// systemd unit in contrib/, the Docker image's start command and health check, LICENSE.
// There is no container engine or systemd PID 1 here: the unit is checked with
// `systemd-analyze verify`, the image's CMD and HEALTHCHECK run as plain processes.
import t from 'tap';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { parse, stringify } from 'yaml';
import { loadConfig } from '../src/config/load.js';
import { outsideTest } from './helpers/env.js';
import { tempDir, testConfigInput, waitFor } from './helpers/gateway.js';
import { freePort } from './helpers/free-port.js';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const read = (file: string) => readFileSync(join(ROOT, file), 'utf8');

/** Resolves true when `port` on 127.0.0.1 can be bound, i.e. nothing holds it any more. */
function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Children of `pid`, from /proc. */
function childrenOf(pid: number): number[] {
  return readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .filter((d) => {
      try {
        const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
        return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid;
      } catch {
        return false;
      }
    })
    .map(Number);
}

/** Collects JSON log lines from a child's stdout (other lines, e.g. npm's banner, are kept raw). */
function collectLogs(child: ChildProcess): { logs: Record<string, unknown>[]; output: () => string } {
  const logs: Record<string, unknown>[] = [];
  const raw: string[] = [];
  createInterface({ input: child.stdout! }).on('line', (line) => {
    raw.push(line);
    try {
      logs.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      /* not a log line */
    }
  });
  child.stderr!.on('data', (d: Buffer) => raw.push(d.toString()));
  return { logs, output: () => raw.join('\n') };
}

t.test('LICENSE is the MIT licence package.json names', async (t) => {
  const pkg = JSON.parse(read('package.json')) as { license: string };
  t.equal(pkg.license, 'MIT');
  t.match(read('LICENSE'), /^MIT License\n\nCopyright \(c\) \d{4} /);
  t.match(read('LICENSE'), /Permission is hereby granted, free of charge/);
});

t.test('npm start stops with the signal npm gets (SIGTERM to npm, or to its process group)', async (t) => {
  if (!existsSync('/proc/self/stat')) {
    t.comment('skipped: needs /proc to find the gateway process under npm');
    return;
  }
  const npm = spawnSync('npm', ['--version'], { encoding: 'utf8' });
  if (npm.status !== 0) {
    t.comment('skipped: npm is not on the PATH');
    return;
  }
  t.comment(`npm ${npm.stdout.trim()}`);
  for (const how of ['npm', 'group'] as const) {
    const { dir, cleanup } = tempDir(`npm-start-${how}`);
    t.teardown(cleanup);
    const port = await freePort();
    const file = join(dir, 'mailbag.yaml');
    writeFileSync(file, stringify(testConfigInput(dir, { smtp: { listen: { host: '127.0.0.1', port } }, log: { level: 'info' } })));
    // `group` is what an interactive shell's `kill %1` and Ctrl-C do: signal the whole job.
    const child = spawn(...outsideTest('npm', ['start']), { cwd: ROOT, env: { ...process.env, MAILBAG_CONFIG: file }, stdio: ['ignore', 'pipe', 'pipe'], detached: how === 'group' });
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    const { logs, output } = collectLogs(child);
    let gateway: number | undefined;
    t.teardown(() => {
      if (gateway !== undefined && alive(gateway)) process.kill(gateway, 'SIGKILL');
    });
    await waitFor(() => logs.find((l) => l.msg === 'listening'), 60_000, `the listening line from npm start: ${output()}`);
    const found = childrenOf(child.pid!).filter((pid) => readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('dist/cli/main.js'));
    t.equal(found.length, 1, `${how}: the gateway runs as npm's child: ${found.join(',')}`);
    gateway = found[0]!;
    if (how === 'npm') child.kill('SIGTERM');
    else process.kill(-child.pid!, 'SIGTERM');
    const code = await exited;
    t.equal(code, 0, `${how}: npm exits 0 once the gateway has stopped`);
    t.notOk(alive(gateway), `${how}: the gateway process is gone`);
    t.ok(logs.some((l) => l.msg === 'stopped'), `${how}: the gateway stopped gracefully (logged "stopped"), even with the signal twice`);
    t.ok(await portIsFree(port), `${how}: the SMTP port is free again`);
  }
});

t.test('npx mailbag runs the CLI of the checkout (the one way the README shows)', async (t) => {
  const build = spawnSync(...outsideTest('npm', ['run', 'build', '--silent']), { cwd: ROOT, encoding: 'utf8' });
  t.equal(build.status, 0, `npm run build: ${build.stderr}`);
  const pkg = JSON.parse(read('package.json')) as { version: string };
  // Offline: the package's own bin must be found without asking the registry.
  const env = { ...process.env, npm_config_offline: 'true', npm_config_yes: 'false' };
  const version = spawnSync(...outsideTest('npx', ['mailbag', '--version']), { cwd: ROOT, env, encoding: 'utf8' });
  t.equal(version.status, 0, version.stderr);
  t.equal(version.stdout, `mailbag ${pkg.version}\n`);
  const fromDocs = spawnSync(...outsideTest('npx', ['mailbag', '-V']), { cwd: join(ROOT, 'docs'), env, encoding: 'utf8' });
  t.equal(fromDocs.stdout, `mailbag ${pkg.version}\n`, `also from a subdirectory of the checkout: ${fromDocs.stderr}`);
});

/** The runtime stage of the Dockerfile: the instructions after the last FROM. */
function dockerRuntime(text: string): Map<string, string[]> {
  const joined = text.replace(/\\\n\s*/g, ' ');
  const stages = joined.split(/^FROM /m);
  const last = stages[stages.length - 1]!;
  const instructions = new Map<string, string[]>();
  for (const line of last.split('\n').slice(1)) {
    const m = /^([A-Z]+)\s+(.*)$/.exec(line.trim());
    if (!m) continue;
    instructions.set(m[1]!, [...(instructions.get(m[1]!) ?? []), m[2]!]);
  }
  return instructions;
}

/** `KEY=value KEY2=value2` (ENV). */
function envOf(lines: string[]): Record<string, string> {
  return Object.fromEntries(lines.flatMap((l) => [...l.matchAll(/(\w+)=(\S+)/g)].map((m) => [m[1]!, m[2]!])));
}

t.test('the Docker image: non-root, ./var a volume, its CMD starts the gateway and its HEALTHCHECK passes', async (t) => {
  const docker = dockerRuntime(read('Dockerfile'));
  t.match(read('Dockerfile'), /^FROM node:20-slim AS build$/m, 'multi-stage on node:20-slim');
  const workdir = docker.get('WORKDIR')?.[0];
  t.equal(workdir, '/app');
  t.equal(docker.get('USER')?.[0], 'node', 'runs as the image user node, not root');
  t.same(JSON.parse(docker.get('VOLUME')![0]!), ['/app/var']);
  const env = envOf(docker.get('ENV') ?? []);
  const cmd = JSON.parse(docker.get('CMD')![0]!) as string[];
  const health = /^(?:--\S+\s+)*CMD (\[.*\])$/.exec(docker.get('HEALTHCHECK')![0]!);
  t.ok(health, 'HEALTHCHECK runs a command');
  const healthCmd = JSON.parse(health![1]!) as string[];

  // The docker config: both listeners on every interface, state under the volume.
  const dockerConfigPath = env['MAILBAG_CONFIG']!;
  t.equal(dockerConfigPath, '/app/config/docker.yaml');
  const configRel = relative(workdir!, dockerConfigPath);
  const config = loadConfig(join(ROOT, configRel));
  t.equal(config.smtp.listen.host, '0.0.0.0', 'SMTP reachable from outside the container');
  t.equal(config.admin.listen.host, '0.0.0.0', 'admin reachable for the orchestrator and Prometheus');
  t.ok(config.admin.enabled);
  for (const p of [config.spool.dir, config.store.path, ...config.routes.flatMap((r) => (r.nexthop.kind === 'maildir' ? [r.nexthop.path] : []))]) {
    t.ok(resolve(workdir!, p).startsWith('/app/var/'), `${p} is in the /app/var volume`);
  }
  t.ok(healthCmd.join(' ').includes(`127.0.0.1:${config.admin.listen.port}/healthz`), 'the health check asks the configured admin port');
  t.ok(docker.get('EXPOSE')?.[0]?.split(/\s+/).includes(String(config.smtp.listen.port)), 'EXPOSE names the SMTP port');

  // The CMD as a plain process in a stand-in for /app: the code is linked in, the config
  // is docker.yaml with loopback and free ports (tests bind only 127.0.0.1).
  const build = spawnSync(...outsideTest('npm', ['run', 'build', '--silent']), { cwd: ROOT, encoding: 'utf8' });
  t.equal(build.status, 0, `npm run build: ${build.stderr}`);
  const { dir: app, cleanup } = tempDir('docker-app');
  t.teardown(cleanup);
  for (const entry of ['node_modules', 'dist', 'bin', 'package.json']) symlinkSync(join(ROOT, entry), join(app, entry));
  const smtpPort = await freePort();
  const adminPort = await freePort();
  const raw = parse(read(configRel)) as { smtp: { listen: object }; admin: { listen: object } };
  raw.smtp.listen = { host: '127.0.0.1', port: smtpPort };
  raw.admin.listen = { host: '127.0.0.1', port: adminPort };
  mkdirSync(join(app, dirname(configRel)), { recursive: true });
  writeFileSync(join(app, configRel), stringify(raw));
  const childEnv = { ...process.env, ...env, MAILBAG_CONFIG: join(app, configRel) };
  t.notOk(isAbsolute(cmd[1]!), 'the CMD names its script relative to WORKDIR');
  const child = spawn(...outsideTest(cmd[0]!, cmd.slice(1)), { cwd: app, env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  const { logs, output } = collectLogs(child);
  await waitFor(() => logs.find((l) => l.msg === 'listening'), 30_000, `the listening line: ${output()}`);
  const probe = healthCmd.map((a) => a.replace(`127.0.0.1:${config.admin.listen.port}`, `127.0.0.1:${adminPort}`));
  const probed = spawnSync(probe[0]!, probe.slice(1), { cwd: app, env: childEnv, encoding: 'utf8' });
  t.equal(probed.status, 0, `the HEALTHCHECK command passes against the running gateway: ${probed.stderr}`);
  t.ok(existsSync(join(app, 'var', 'mailbag.db')), 'the store is in ./var (the volume)');
  child.kill('SIGTERM'); // docker stop
  t.equal(await exited, 0, 'stops gracefully on SIGTERM');
  const after = spawnSync(probe[0]!, probe.slice(1), { encoding: 'utf8' });
  t.equal(after.status, 1, 'the HEALTHCHECK fails once the gateway is gone');
});

/** `Key=value` lines of a unit file, repeated keys kept in order. */
function unitDirectives(text: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const line of text.split('\n')) {
    const m = /^([A-Za-z]+)=(.*)$/.exec(line);
    if (m) out.set(m[1]!, [...(out.get(m[1]!) ?? []), m[2]!]);
  }
  return out;
}

t.test('the systemd unit: hardened, its config writes only where the unit allows, systemd-analyze verify is clean', async (t) => {
  const text = read('contrib/mailbag.service');
  const unit = unitDirectives(text);
  const one = (key: string) => unit.get(key)?.[0];
  t.equal(one('User'), 'mailbag', 'a dedicated user');
  t.equal(one('ProtectSystem'), 'strict');
  t.equal(one('NoNewPrivileges'), 'yes');
  t.equal(one('PrivateTmp'), 'yes');
  t.equal(one('ProtectHome'), 'yes');
  t.equal(one('Restart'), 'on-failure');
  t.equal(one('CapabilityBoundingSet'), '', 'no capabilities');
  t.equal(one('KillSignal'), 'SIGTERM');

  const env = envOf(unit.get('Environment') ?? []);
  t.equal(env['MAILBAG_CONFIG'], '/etc/mailbag/mailbag.yaml');
  const config = loadConfig(join(ROOT, 'contrib/mailbag.yaml'));
  const writable = (one('ReadWritePaths') ?? '').split(/\s+/).filter(Boolean);
  const maildirs = config.routes.flatMap((r) => (r.nexthop.kind === 'maildir' ? [r.nexthop.path] : []));
  for (const p of [config.spool.dir, dirname(config.store.path), ...maildirs]) {
    t.ok(isAbsolute(p), `${p} is absolute (the unit's working directory is not the checkout)`);
    t.ok(writable.some((w) => p === w || p.startsWith(`${w}/`)), `${p} is under ReadWritePaths (${writable.join(' ')})`);
  }
  const stopSeconds = Number(/^(\d+)s$/.exec(one('TimeoutStopSec') ?? '')?.[1]);
  t.ok(stopSeconds * 1000 > config.queue.shutdownGrace, `TimeoutStopSec (${stopSeconds}s) leaves the graceful stop its shutdownGrace`);
  t.match(one('ExecStart'), /^\/usr\/bin\/node \/opt\/mailbag\/bin\/mailbag\.js start$/);
  t.match(one('ExecStartPre'), /bin\/mailbag\.js config check$/);

  const analyze = spawnSync('systemd-analyze', ['--version'], { encoding: 'utf8' });
  if (analyze.error || analyze.status !== 0) {
    t.comment('skipped: systemd-analyze is not installed: the unit was not verified');
    return;
  }
  const { dir, cleanup } = tempDir('unit');
  t.teardown(cleanup);
  const copy = join(dir, 'mailbag.service');
  copyFileSync(join(ROOT, 'contrib/mailbag.service'), copy);
  if (!existsSync('/usr/bin/node')) {
    // verify checks that ExecStart's program exists; elsewhere node may live in another place.
    t.comment(`no /usr/bin/node here: verifying with ${process.execPath}`);
    writeFileSync(copy, text.replaceAll('/usr/bin/node', process.execPath));
  }
  const verify = spawnSync('systemd-analyze', ['verify', copy], { encoding: 'utf8' });
  t.comment(analyze.stdout.split('\n')[0]!);
  t.equal(verify.status, 0, `systemd-analyze verify exits 0: ${verify.stderr}`);
  // verify reports unknown keys and bad values as warnings ("..., ignoring") with exit 0.
  t.equal(verify.stderr.trim(), '', 'no warnings');
});
