import t from 'tap';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig, validateConfig, resolveConfigPath, DEFAULT_CONFIG_PATH, ConfigError } from '../src/config/load.js';
import { parseDuration, parseSize } from '../src/config/units.js';
import { cli } from './helpers/cli.js';

const dir = mkdtempSync(join(tmpdir(), 'mailbag-config-'));
const file = (name: string, text: string) => {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
};

t.test('embedded default loads and routes example.test to a Maildir', async (t) => {
  const c = loadConfig(DEFAULT_CONFIG_PATH);
  t.equal(c.smtp.listen.host, '127.0.0.1');
  t.equal(c.smtp.listen.port, 2525);
  t.equal(c.smtp.maxMessageBytes, 25 * 1024 * 1024);
  t.same(c.smtp.localDomains, ['example.test', '*.example.test']);
  t.same(c.routes[0]!.nexthop, { kind: 'maildir', path: './var/mailboxes', url: 'maildir:./var/mailboxes' });
  t.equal(c.queue.lifetime, 5 * 86_400_000);
});

t.test('example config documents a valid configuration', async (t) => {
  const c = loadConfig(new URL('../config/example.yaml', import.meta.url).pathname);
  t.ok(c.routes.length >= 3);
  // sections the example shows at their defaults must say the defaults
  const defaults = validateConfig({});
  t.same(c.imp, defaults.imp, 'imp: example values are the defaults');
  t.same(c.queue, defaults.queue, 'queue: example values are the defaults');
});

t.test('config selection: --config, then MAILBAG_CONFIG, then the default', async (t) => {
  t.equal(resolveConfigPath('a.yaml', { MAILBAG_CONFIG: 'b.yaml' }), 'a.yaml');
  t.equal(resolveConfigPath(undefined, { MAILBAG_CONFIG: 'b.yaml' }), 'b.yaml');
  t.equal(resolveConfigPath(undefined, {}), DEFAULT_CONFIG_PATH);
});

t.test('invalid config names the key path and what is wrong', async (t) => {
  t.throws(() => validateConfig({ smtp: { listen: { host: 'x', port: 70000 } } }), /smtp\.listen\.port: .*65535/);
  t.throws(() => validateConfig({ smtp: { colour: 'blue' } }), /smtp: .*colour/);
  t.throws(() => validateConfig({ queue: { lifetime: 'soon' } }), /queue\.lifetime: not a duration/);
  t.throws(() => validateConfig({ routes: [{ domain: 'a.test', nexthop: 'imp://peer:753' }] }), /routes\.0\.nexthop: imp:\/\/ next hops are reserved/);
  t.throws(() => validateConfig({ routes: [{ domain: 'bad domain', nexthop: 'smtp://h:25' }] }), /routes\.0\.domain: must be a domain/);
  t.throws(() => validateConfig({ routes: [{ domain: 'a.test', nexthop: 'ftp://h:25' }] }), /routes\.0\.nexthop: must be/);
  const bad = file('bad.yaml', 'smtp: [unclosed\n');
  t.throws(() => loadConfig(bad), ConfigError);
  t.throws(() => loadConfig(join(dir, 'missing.yaml')), /cannot read config/);
});

t.test('next hops parse into kinds', async (t) => {
  const c = validateConfig({
    routes: [
      { domain: '*', nexthop: 'smtp://[::1]:25' },
      { domain: '*.Example.TEST', nexthop: 'lmtp://127.0.0.1:24' },
    ],
  });
  t.same(c.routes[0]!.nexthop, { kind: 'smtp', host: '::1', port: 25, url: 'smtp://[::1]:25', tls: 'opportunistic', tlsVerify: false });
  t.equal(c.routes[1]!.domain, '*.example.test');
  t.equal(c.routes[1]!.nexthop.kind, 'lmtp');
});

t.test('units', async (t) => {
  t.equal(parseDuration('250ms'), 250);
  t.equal(parseDuration('5d'), 432_000_000);
  t.equal(parseDuration(1500), 1500);
  t.equal(parseDuration('5 fortnights'), undefined);
  t.equal(parseSize('25MiB'), 26_214_400);
  t.equal(parseSize('1kb'), 1000);
  t.equal(parseSize('lots'), undefined);
});

t.test('CLI exit codes: 0 ok, 1 failure, 2 usage', async (t) => {
  const ok = await cli(['config', 'check']);
  t.equal(ok.code, 0);
  t.match(ok.stdout.toString(), /config ok/);
  const bad = await cli(['config', 'check', '--config', file('bad2.yaml', 'smtp: {maxRecipients: 0}\n')]);
  t.equal(bad.code, 1);
  t.match(bad.stderr, /^mailbag config check: invalid config .*smtp\.maxRecipients/);
  t.equal(bad.stderr.trim().split('\n').length, 1, 'one line on stderr');
  const env = await cli(['config', 'show'], { env: { MAILBAG_CONFIG: file('env.yaml', 'smtp: {listen: {host: 127.0.0.1, port: 2600}}\n') } });
  t.equal(env.code, 0);
  t.match(env.stdout.toString(), /port: 2600/);
  t.equal((await cli(['nonsense'])).code, 2);
  t.equal((await cli([])).code, 2);
  t.equal((await cli(['config', 'show', '--frobnicate'])).code, 2);
  const help = await cli(['config', '--help']);
  t.equal(help.code, 0);
  t.match(help.stdout.toString(), /show .*effective/);
  t.equal((await cli(['start', '--help'])).code, 0);
});
