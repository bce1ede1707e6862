// What an operator meets first: --version, usage errors, config check agreeing with
// start, config show output that config check accepts, unusable paths named at once.
import t from 'tap';
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse, stringify } from 'yaml';
import { loadConfig, validateConfig } from '../src/config/load.js';
import { preflight } from '../src/cli/preflight.js';
import { cli } from './helpers/cli.js';
import { outsideTest, UNPRIVILEGED_UID, unprivilegedCannotRead } from './helpers/env.js';
import { tempDir, testConfigInput } from './helpers/gateway.js';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const MAIN = join(ROOT, 'src/cli/main.ts');
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string; description: string };

const { dir, cleanup } = tempDir('operator');
t.teardown(cleanup);
let n = 0;
const configFile = (config: unknown) => {
  const file = join(dir, `config-${n++}.yaml`);
  writeFileSync(file, typeof config === 'string' ? config : stringify(config));
  return file;
};

/** `mailbag ARGS` as a child process (what `start` needs: it installs signal handlers). */
function run(args: string[], opts: { uid?: number } = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const argv = ['--import=tsx', MAIN, ...args];
  // Another user cannot write the test runner's process records: leave its hooks out.
  const [command, commandArgs] = opts.uid === undefined ? [process.execPath, argv] : outsideTest(process.execPath, argv);
  const child = spawn(command, commandArgs, {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    ...(opts.uid !== undefined ? { uid: opts.uid, gid: opts.uid } : {}),
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  // A start that hangs (the bug this guards against) must fail the test, not the suite.
  const guard = setTimeout(() => child.kill('SIGKILL'), 60_000);
  return new Promise((resolve) =>
    child.on('exit', (code) => {
      clearTimeout(guard);
      resolve({ code, stdout, stderr });
    }),
  );
}

t.test('--version and -V print the package version', async (t) => {
  for (const flag of ['--version', '-V']) {
    const r = await cli([flag]);
    t.equal(r.code, 0, flag);
    t.equal(r.stdout.toString(), `mailbag ${pkg.version}\n`, flag);
  }
  t.match((await cli(['--help'])).stdout.toString(), /--version/, 'the help mentions it');
});

t.test('an unknown command is named alone, with where to look', async (t) => {
  const top = await cli(['frobnicate', '--config', 'x']);
  t.equal(top.code, 2);
  t.equal(top.stderr, "mailbag: unknown command 'frobnicate' (see 'mailbag --help')\n");
  const sub = await cli(['config', 'frobnicate']);
  t.equal(sub.code, 2);
  t.equal(sub.stderr, "mailbag config: unknown command 'frobnicate' (see 'mailbag config --help')\n");
});

t.test('--help and package.json describe what is built, in the same words', async (t) => {
  const help = (await cli(['--help'])).stdout.toString();
  t.ok(help.includes(pkg.description), 'the help summary is the package description');
  // Whatever the README lists as planned, not built, neither may advertise.
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const planned = /Planned, not built yet: ([^]*?)\.\s/.exec(readme)?.[1] ?? '';
  const features: Array<[RegExp, RegExp]> = [
    [/multilingual rewriting/i, /multilingual rewriting/i],
    [/Proofpoint on Demand/i, /Proofpoint|\bPoD\b/i],
    [/PoD stream consumer/i, /stream consumer/i],
    [/PoD (stream )?publisher/i, /publisher/i],
    [/correlation/i, /correlation/i],
    [/IMP over TCP/i, /IMP over TCP|imp:\/\//i],
  ];
  for (const [inReadme, claim] of features) {
    if (!inReadme.test(planned)) continue;
    t.notMatch(pkg.description, claim, `package.json does not advertise ${claim}`);
    t.notMatch(help, claim, `--help does not advertise ${claim}`);
  }
  t.ok(planned === '' || features.some(([r]) => r.test(planned)), `the planned list is understood: ${planned}`);
});

t.test('config check refuses what start refuses', async (t) => {
  for (const [smtp, why] of [
    [{ trustedNetworks: ['10.0.0.0/33'] }, /smtp\.trustedNetworks\.0: 10\.0\.0\.0\/33 has a bad prefix length/],
    [{ trustedNetworks: ['300.1.1.1/8'] }, /smtp\.trustedNetworks\.0: 300\.1\.1\.1\/8 must be an IP address/],
    [{ listen: { host: 'not a host', port: 0 } }, /smtp\.listen\.host: must be an IP address or a host name/],
  ] as const) {
    const file = configFile(testConfigInput(dir, { smtp }));
    const check = await cli(['config', 'check', '--config', file]);
    t.equal(check.code, 1, `config check: ${JSON.stringify(smtp)}`);
    t.match(check.stderr, why);
    const start = await run(['start', '--config', file]);
    t.equal(start.code, 1, `start: ${JSON.stringify(smtp)}`);
    t.match(start.stderr, why);
    t.equal(start.stderr.trim().split('\n').length, 1, 'one line');
  }
});

t.test('a listen host that does not resolve is refused by the shared preflight', async (t) => {
  const config = validateConfig(testConfigInput(dir, { smtp: { listen: { host: 'mx.nowhere.invalid', port: 0 } } }));
  const notFound = () => Promise.reject(Object.assign(new Error('getaddrinfo ENOTFOUND'), { code: 'ENOTFOUND' }));
  await t.rejects(preflight(config, 'f.yaml', { create: false, resolveHost: notFound }), {
    code: 'ERR_MAILBAG_PREFLIGHT',
    message: 'f.yaml: smtp.listen.host: cannot resolve "mx.nowhere.invalid" (ENOTFOUND)',
  });
  const seen: string[] = [];
  const found = (h: string) => (seen.push(h), Promise.resolve({ address: '127.0.0.1', family: 4 }));
  t.same(await preflight(config, 'f.yaml', { create: false, resolveHost: found }), []);
  t.same(seen, ['mx.nowhere.invalid'], 'names are resolved; addresses are not looked up');
});

t.test('config show prints a config that config check accepts, secrets redacted', async (t) => {
  const input = testConfigInput(dir, {
    smtp: {
      trustedNetworks: ['10.0.0.0/8'],
      auth: { users: [{ username: 'relay', password: 's3cret-pw' }], allowInsecure: true },
    },
    routes: [
      { domain: 'example.test', nexthop: `maildir:${join(dir, 'mailboxes')}` },
      { domain: '*.example.test', nexthop: 'lmtp://127.0.0.1:24' },
      { domain: '*', nexthop: 'smtp://[::1]:10025' },
    ],
    queue: { lifetime: '2d', retryInitial: 100 },
  });
  const file = configFile(input);
  const show = await cli(['config', 'show', '--config', file]);
  t.equal(show.code, 0, show.stderr);
  const printed = show.stdout.toString();
  t.notMatch(printed, /s3cret-pw/, 'the password is not printed');
  t.match(printed, /password: <redacted>/);
  t.match(printed, /nexthop: smtp:\/\/\[::1\]:10025/, 'routes print as their URLs');

  const shown = configFile(printed);
  const check = await cli(['config', 'check', '--config', shown]);
  t.equal(check.code, 0, `config check accepts config show's output: ${check.stderr}`);
  const original = loadConfig(file);
  const again = loadConfig(shown);
  t.same(again, { ...original, smtp: { ...original.smtp, auth: { users: [{ username: 'relay', password: '<redacted>' }], allowInsecure: true } } }, 'the same config, secrets aside');
  t.same(parse(printed), parse(stringify(parse(printed))), 'plain YAML');
});

t.test('config check and start warn about a config that accepts no mail', async (t) => {
  const file = configFile(testConfigInput(dir, { routes: [], smtp: { localDomains: [] } }));
  const check = await cli(['config', 'check', '--config', file]);
  t.equal(check.code, 0);
  t.match(check.stderr, /^mailbag config check: warning: routes is empty: every recipient will be refused/);
  const relayOnly = configFile(testConfigInput(dir, { smtp: { localDomains: [] } }));
  t.match((await cli(['config', 'check', '--config', relayOnly])).stderr, /no smtp\.localDomains, smtp\.trustedNetworks or smtp\.auth/);
  t.equal((await cli(['config', 'check', '--config', configFile(testConfigInput(dir))])).stderr, '', 'no warning for a working config');
});

t.test('unusable spool or store paths fail at once, naming the key and the path', async (t) => {
  const file = join(dir, 'a-file');
  writeFileSync(file, 'x');
  // [what, config, config check's line (also start's unless given), start's line]
  const cases: Array<[string, Record<string, unknown>, RegExp, RegExp?]> = [
    ['a file in the way', { spool: { dir: join(file, 'spool') } }, /spool\.dir: .*a-file\/spool is unusable: not a directory at .*a-file$/m],
    // At start the store's own open explains it (test/store-open-errors.test.ts); the path is named.
    ['the store path is a directory', { store: { path: dir } }, /store\.path: .* is unusable: not a file at /, new RegExp(`^mailbag start: .*${dir}`)],
  ];
  if (existsSync('/proc/self')) {
    cases.push(['under /proc', { spool: { dir: '/proc/mailbag-test/spool' } }, /spool\.dir: \/proc\/mailbag-test\/spool is unusable: .*at \/proc/]);
    cases.push(['store under /proc', { store: { path: '/proc/mailbag-test/mailbag.db' } }, /store\.path: \/proc\/mailbag-test\/mailbag\.db is unusable: on procfs, where nothing can be stored at \/proc$/m]);
    cases.push([
      'a Maildir next hop under /proc',
      { routes: [{ domain: 'example.test', nexthop: 'maildir:/proc/mailbag-test/mail' }] },
      /routes\.0\.nexthop: maildir:\/proc\/mailbag-test\/mail is unusable: on procfs, where nothing can be stored at \/proc$/m,
    ]);
  } else t.comment('skipped the /proc cases: no /proc on this system');
  for (const [what, overrides, why, atStart] of cases) {
    const config = configFile(testConfigInput(dir, overrides));
    const check = await cli(['config', 'check', '--config', config]);
    t.equal(check.code, 1, `config check, ${what}`);
    t.match(check.stderr, why, `config check, ${what}`);
    const start = await run(['start', '--config', config]);
    t.equal(start.code, 1, `start, ${what}: ${start.stderr}`);
    t.match(start.stderr, atStart ?? why, `start, ${what}`);
    t.equal(start.stderr.trim().split('\n').length, 1, `start, ${what}: one line`);
  }
});

t.test('no permission: named at once (run as an unprivileged user when root)', { skip: unprivilegedCannotRead(MAIN) }, async (t) => {
  const locked = join(dir, 'locked');
  mkdirSync(locked);
  chmodSync(dir, 0o755);
  chmodSync(locked, 0o555);
  const config = configFile(testConfigInput(dir, { spool: { dir: join(locked, 'spool') }, store: { path: join(locked, 'mailbag.db') } }));
  chmodSync(config, 0o644);
  const root = process.getuid?.() === 0;
  const uid = root ? UNPRIVILEGED_UID : undefined;
  const check = await run(['config', 'check', '--config', config], uid === undefined ? {} : { uid });
  t.equal(check.code, 1, `config check: ${check.stderr}`);
  t.match(check.stderr, /spool\.dir: .*locked\/spool is unusable: no permission \(EACCES\) at .*locked/);
  t.match(check.stderr, /store\.path: .*locked\/mailbag\.db is unusable: no permission \(EACCES\) at .*locked/);
  // start names the spool (created by start) in the same words; the store's permissions are
  // then explained by the store's own open (test/store-open-errors.test.ts).
  const start = await run(['start', '--config', config], uid === undefined ? {} : { uid });
  t.equal(start.code, 1, `start: ${start.stderr}`);
  t.match(start.stderr, /spool\.dir: .*locked\/spool is unusable: no permission \(EACCES\) at .*locked/);
  t.equal(start.stderr.trim().split('\n').length, 1, 'start: one line');
});
