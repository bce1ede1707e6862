// A directory that cannot be created on a kernel file system (/proc answers ENOENT to
// mkdir under an existing directory): Node 20's recursive mkdir spins there forever. The
// commands that create a directory outside start's checks (`users` and `pod` create a
// missing store; `pod token` and the publisher create the secret file) must fail with one
// line naming the path instead, and config check must name the secret file as it names the
// store.
import t from 'tap';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { existsSync, writeFileSync } from 'node:fs';
import { makeDirSync } from '../src/make-dir.js';
import { loadOrCreateSecret, PodSecretError } from '../src/gateway/pod-secret.js';
import { cli } from './helpers/cli.js';
import { tempDir, testConfigInput } from './helpers/gateway.js';

if (!existsSync('/proc/self')) {
  t.comment('skipped: no /proc on this system');
} else {
  const { dir, cleanup } = tempDir('kernel-fs');
  t.teardown(cleanup);
  const configFile = (overrides: Record<string, unknown>) => {
    const file = join(dir, `c${Math.random().toString(36).slice(2)}.yaml`);
    writeFileSync(file, stringify(testConfigInput(dir, overrides)));
    return file;
  };

  t.test('makeDirSync: creates every level, accepts what exists, throws the level that fails', async (t) => {
    const deep = join(dir, 'a', 'b', 'c');
    makeDirSync(deep);
    t.ok(existsSync(deep));
    makeDirSync(deep);
    t.throws(() => makeDirSync('/proc/mailbag-test/x'), { code: 'ENOENT', syscall: 'mkdir', path: '/proc/mailbag-test' });
    writeFileSync(join(dir, 'file'), '');
    t.throws(() => makeDirSync(join(dir, 'file', 'sub')), { code: 'EEXIST', syscall: 'mkdir', path: join(dir, 'file') }, 'a file in the way');
  });

  t.test('users and pod commands creating a store under /proc: exit 1, one line naming the store', async (t) => {
    const file = configFile({ store: { path: '/proc/mailbag-test/mailbag.db' } });
    for (const argv of [['users', 'list'], ['pod', 'status'], ['pod', 'dead-letters']]) {
      const r = await cli([...argv, '--config', file]);
      t.equal(r.code, 1, argv.join(' '));
      t.match(r.stderr, /^mailbag [a-z -]+: cannot open the store \/proc\/mailbag-test\/mailbag\.db: its directory \/proc\/mailbag-test does not exist and cannot be created \(ENOENT\)/);
      t.equal(r.stderr.trim().split('\n').length, 1);
    }
  });

  t.test('the publisher secret under /proc: pod token exits 1 naming it; config check names the key', async (t) => {
    t.throws(() => loadOrCreateSecret('/proc/mailbag-test/pod.secret'), PodSecretError);
    const file = configFile({ pod: { publisher: { enabled: true, listen: { host: '127.0.0.1', port: 0 }, secretFile: '/proc/mailbag-test/pod.secret' } } });
    const token = await cli(['pod', 'token', '--cid', 'mailbag', '--config', file]);
    t.equal(token.code, 1);
    t.match(token.stderr, /^mailbag pod token: cannot create \/proc\/mailbag-test\/pod\.secret: /);
    const check = await cli(['config', 'check', '--config', file]);
    t.equal(check.code, 1);
    t.match(check.stderr, /pod\.publisher\.secretFile: \/proc\/mailbag-test\/pod\.secret is unusable: on procfs, where nothing can be stored at \/proc/);
    // Off, the publisher's secret file is not looked at.
    const off = configFile({ pod: { publisher: { enabled: false, secretFile: '/proc/mailbag-test/pod.secret' } } });
    t.equal((await cli(['config', 'check', '--config', off])).code, 0);
  });
}
