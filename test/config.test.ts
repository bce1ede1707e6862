import t from 'tap';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig, validateConfig, resolveConfigPath, DEFAULT_CONFIG_PATH, ConfigError } from '../src/config/load.js';
import { parseDuration, parseSize } from '../src/config/units.js';
import { crossFieldIssues } from '../src/config/schema.js';
import { buildNetworkList } from '../src/smtp/relay-policy.js';
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

t.test('config selection: --config, then MAILBAG_CONFIG, then the default', async (t) => {
  t.equal(resolveConfigPath('a.yaml', { MAILBAG_CONFIG: 'b.yaml' }), 'a.yaml');
  t.equal(resolveConfigPath(undefined, { MAILBAG_CONFIG: 'b.yaml' }), 'b.yaml');
  t.equal(resolveConfigPath(undefined, {}), DEFAULT_CONFIG_PATH);
});

t.test('invalid config names the key path and what is wrong', async (t) => {
  t.throws(() => validateConfig({ smtp: { listen: { host: 'x', port: 70000 } } }), /smtp\.listen\.port: .*65535/);
  t.throws(() => validateConfig({ smtp: { colour: 'blue' } }), /smtp: .*colour/);
  t.throws(() => validateConfig({ queue: { lifetime: 'soon' } }), /queue\.lifetime: not a duration/);
  t.throws(() => validateConfig({ routes: [{ domain: 'bad domain', nexthop: 'smtp://h:25' }] }), /routes\.0\.domain: must be a domain/);
  t.throws(() => validateConfig({ routes: [{ domain: 'a.test', nexthop: 'ftp://h:25' }] }), /routes\.0\.nexthop: must be/);
  const bad = file('bad.yaml', 'smtp: [unclosed\n');
  t.throws(() => loadConfig(bad), ConfigError);
  // The CLI prints the first line: it must say where, and not end in the colon that led to the excerpt.
  for (const text of ['smtp:\n  listen: {port: 25\n', 'smtp: {}\nsmtp: {}\n', 'a: b: c\n']) {
    const err = (() => {
      try {
        loadConfig(file('bad-yaml.yaml', text));
      } catch (e) {
        return e as Error;
      }
      return undefined;
    })();
    const first = err?.message.split('\n')[0] ?? '';
    t.match(first, /^invalid YAML in .*bad-yaml\.yaml: .+ at line \d+, column \d+$/, JSON.stringify(first));
  }
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

t.test('networks: what config check accepts is what the listener can build (one validation)', async (t) => {
  t.throws(() => validateConfig({ smtp: { trustedNetworks: ['10.0.0.0/33'] } }), /smtp\.trustedNetworks\.0: 10\.0\.0\.0\/33 has a bad prefix length/);
  t.throws(() => validateConfig({ smtp: { trustedNetworks: ['300.1.1.1/8'] } }), /smtp\.trustedNetworks\.0: 300\.1\.1\.1\/8 must be an IP address/);
  t.throws(() => validateConfig({ smtp: { trustedNetworks: ['::1/129'] } }), /bad prefix length \(0 to 128\)/);
  t.throws(() => validateConfig({ smtp: { trustedNetworks: ['10.0.0.0/8/8'] } }), /must be an IP address or CIDR/);
  t.throws(() => validateConfig({ smtp: { trustedNetworks: ['10.0.0.0/-1'] } }), /bad prefix length/);
  const ok = validateConfig({ smtp: { trustedNetworks: ['10.0.0.0/8', '192.0.2.1', '::1/128', '2001:db8::/32'] } });
  t.equal(ok.smtp.trustedNetworks.length, 4);
  // Every accepted entry builds into the listener's BlockList without throwing.
  t.doesNotThrow(() => buildNetworkList(ok.smtp.trustedNetworks));
});

t.test('listen hosts: an address or a host name; a missing host or port takes the default', async (t) => {
  t.throws(() => validateConfig({ smtp: { listen: { host: 'not a host', port: 25 } } }), /smtp\.listen\.host: must be an IP address or a host name/);
  t.throws(() => validateConfig({ admin: { listen: { host: '', port: 25 } } }), /admin\.listen\.host/);
  const c = validateConfig({ smtp: { listen: { port: 2600 } }, admin: { listen: { host: '::1' } } });
  t.same(c.smtp.listen, { host: '127.0.0.1', port: 2600 });
  t.same(c.admin.listen, { host: '::1', port: 9025 });
  t.same(validateConfig({ smtp: { listen: { host: 'localhost' } } }).smtp.listen, { host: 'localhost', port: 2525 });
});

t.test('gateway.hostname must be a domain name', async (t) => {
  for (const bad of ['mail gateway', 'mx_1.example.test', 'mx.example.test.', '-mx.example.test', 'a'.repeat(64) + '.test', '']) {
    t.throws(() => validateConfig({ gateway: { hostname: bad } }), /gateway\.hostname: must be a domain name/, JSON.stringify(bad));
  }
  t.equal(validateConfig({ gateway: { hostname: 'MX1.example-relay.test' } }).gateway.hostname, 'MX1.example-relay.test');
});

t.test('durations that run in timers stay within 2^31-1 ms; lifetime is not a timer', async (t) => {
  for (const key of ['socketTimeout', 'greetingDelay']) {
    t.throws(() => validateConfig({ smtp: { [key]: '25d' } }), new RegExp(`smtp\\.${key}: longer than a timer can hold \\(2147483647 ms`));
  }
  for (const key of ['attemptTimeout', 'shutdownGrace']) {
    t.throws(() => validateConfig({ queue: { [key]: '25d' } }), new RegExp(`queue\\.${key}: longer than a timer`));
  }
  t.throws(() => validateConfig({ queue: { retryMax: '25d', retryInitial: '1m' } }), /queue\.retryMax: longer than a timer/);
  t.equal(validateConfig({ queue: { attemptTimeout: 2 ** 31 - 1 } }).queue.attemptTimeout, 2 ** 31 - 1);
  t.equal(validateConfig({ queue: { lifetime: '60d' } }).queue.lifetime, 60 * 86_400_000);
});

t.test('cross-field: retryInitial above retryMax is refused', async (t) => {
  t.throws(() => validateConfig({ queue: { retryInitial: '2h' } }), /queue\.retryInitial: 7200000 ms is above queue\.retryMax \(3600000 ms\)/);
  t.equal(validateConfig({ queue: { retryInitial: '1h', retryMax: '1h' } }).queue.retryInitial, 3_600_000);
});

t.test('IMP: maxBagBytes cannot exceed the largest bag; maxMessageBytes must fit a bag once IMP routes exist', async (t) => {
  t.throws(() => validateConfig({ imp: { maxBagBytes: '1GiB' } }), /imp\.maxBagBytes: must be 4 to 16777219/);
  t.equal(validateConfig({ imp: { maxBagBytes: '1MiB' } }).imp.maxBagBytes, 1_048_576);
  const base = validateConfig({});
  const impRoute = [{ nexthop: { url: 'imp://peer.test:753' } }];
  t.same(crossFieldIssues({ ...base, routes: impRoute }), [
    {
      path: ['smtp', 'maxMessageBytes'],
      message: 'smtp.maxMessageBytes (26214400) is larger than an IMP bag can carry: imp.maxBagBytes (16777219) minus its 4-octet header is 16777215',
    },
  ]);
  t.same(crossFieldIssues({ ...base, routes: impRoute, smtp: { maxMessageBytes: 16_777_215 } }), [], 'a message that fits');
  t.same(crossFieldIssues(base), [], 'no IMP route: the SMTP size limit is free');
  // The same rule through validation, now that imp:// routes parse.
  t.throws(
    () => validateConfig({ routes: [{ domain: 'a.test', nexthop: 'imp://peer.test:753' }] }),
    /smtp\.maxMessageBytes: smtp\.maxMessageBytes \(26214400\) is larger than an IMP bag can carry/,
  );
  t.throws(
    () => validateConfig({ smtp: { maxMessageBytes: '2MiB' }, imp: { maxBagBytes: '1MiB' }, routes: [{ domain: 'a.test', nexthop: 'imp://peer.test:753' }] }),
    /imp\.maxBagBytes \(1048576\) minus its 4-octet header is 1048572/,
  );
});

t.test('cross-field: two listeners of one config on one port are refused, naming both', async (t) => {
  t.throws(
    () => validateConfig({ smtp: { listen: { port: 12600 } }, admin: { listen: { port: 12600 } } }),
    /admin\.listen\.port: 127\.0\.0\.1:12600 is also smtp\.listen \(127\.0\.0\.1:12600\): give each listener its own port/,
  );
  t.throws(
    () => validateConfig({ imp: { listen: { host: '0.0.0.0', port: 2525 } } }),
    /imp\.listen\.port: 0\.0\.0\.0:2525 is also smtp\.listen \(127\.0\.0\.1:2525\)/,
    'a wildcard address takes the port on every address of its family',
  );
  t.throws(
    () => validateConfig({ pod: { publisher: { enabled: true, listen: { host: '::', port: 9025 } } } }),
    /pod\.publisher\.listen\.port: \[::\]:9025 is also admin\.listen \(127\.0\.0\.1:9025\)/,
    ':: takes IPv4 addresses too (dual stack)',
  );
  // What does not collide: other addresses, a listener that is off, port 0 (any free port).
  t.ok(validateConfig({ smtp: { listen: { host: '127.0.0.1', port: 2600 } }, imp: { listen: { host: '127.0.0.2', port: 2600 } } }));
  t.ok(validateConfig({ smtp: { listen: { host: '0.0.0.0', port: 2600 } }, imp: { listen: { host: '::1', port: 2600 } } }));
  t.ok(validateConfig({ smtp: { listen: { port: 9025 } }, admin: { enabled: false } }));
  t.ok(validateConfig({ smtp: { listen: { port: 9026 } }, pod: { publisher: { enabled: false } } }));
  t.ok(validateConfig({ smtp: { listen: { port: 0 } }, admin: { listen: { port: 0 } }, imp: { listen: { port: 0 } } }));
  t.ok(loadConfig(DEFAULT_CONFIG_PATH), 'the embedded defaults');
});

t.test('imp:// routes: host and port, compress per route or from imp.compress, TLS only from the first octet', async (t) => {
  const fits = { smtp: { maxMessageBytes: '10MiB' } };
  const c = validateConfig({
    ...fits,
    routes: [
      { domain: 'a.test', nexthop: 'imp://peer.test:7530' },
      { domain: 'b.test', nexthop: 'imp://[::1]:7531', compress: true },
    ],
  });
  t.same(c.routes[0]!.nexthop, { kind: 'imp', host: 'peer.test', port: 7530, url: 'imp://peer.test:7530' });
  t.same(c.routes[1]!.nexthop, { kind: 'imp', host: '::1', port: 7531, url: 'imp://[::1]:7531', compress: true });
  t.equal(c.imp.compress, false, 'compression is off unless configured');
  t.equal(c.imp.maxMessagesPerBag, 10000);
  t.throws(() => validateConfig({ ...fits, routes: [{ domain: 'a.test', nexthop: 'imp://peer.test:7530', tls: 'opportunistic' }] }), /routes\.0\.tls: IMP has no STARTTLS/);
  t.throws(() => validateConfig({ ...fits, routes: [{ domain: 'a.test', nexthop: 'maildir:/m', tls: 'required' }] }), /routes\.0\.tls: applies to smtp:\/\/, lmtp:\/\/ and imp:\/\/ next hops only/);
  t.throws(() => validateConfig({ routes: [{ domain: 'a.test', nexthop: 'smtp://h:25', compress: true }] }), /routes\.0\.compress: applies to imp:\/\/ next hops only/);
  t.throws(
    () => validateConfig({ ...fits, routes: [{ domain: 'a.test', nexthop: 'imp://p:1', compress: true }, { domain: 'b.test', nexthop: 'imp://p:1', compress: false }] }),
    /routes\.1\.compress: next hop imp:\/\/p:1 has another compress setting in routes\.0/,
  );
  t.throws(() => validateConfig({ ...fits, routes: [{ domain: 'a.test', nexthop: 'imp://p:0' }] }), /port 0 is out of range/);
});
