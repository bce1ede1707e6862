// What start refuses, config check refuses first: the rewrite step's configuration (one
// step per gateway; the ARC key the multilingual step loads) is checked without starting.
import t from 'tap';
import { generateKeyPairSync } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { preflight } from '../src/cli/preflight.js';
import { validateConfig } from '../src/config/load.js';
import { tempDir, testConfig, testConfigInput } from './helpers/gateway.js';

const { dir, cleanup } = tempDir('parity');
t.teardown(cleanup);

t.test('queue.rewrite beside an active multilingual step is a config error naming queue.rewrite', async (t) => {
  const rewrite = { module: './step.js' };
  t.throws(
    () => validateConfig(testConfigInput(dir, { queue: { rewrite }, multilingual: { mode: 'select' } })),
    /queue\.rewrite: the multilingual step is on \(multilingual\.mode select\); a gateway has one rewrite step: remove queue\.rewrite or turn multilingual off/,
  );
  t.throws(
    () => validateConfig(testConfigInput(dir, { queue: { rewrite }, multilingual: { domains: { 'example.test': { mode: 'reorder' } } } })),
    /queue\.rewrite: the multilingual step is on \(multilingual\.domains\.example\.test\.mode reorder\)/,
  );
  t.ok(validateConfig(testConfigInput(dir, { queue: { rewrite }, multilingual: { mode: 'off', domains: { 'a.test': { mode: 'off' } } } })), 'multilingual off: the module is the step');
});

t.test('the ARC key of an active multilingual step must load', async (t) => {
  const arc = (privateKeyFile: string) => ({ domain: 'example.test', selector: 's1', privateKeyFile });
  const missing = join(dir, 'missing.pem');
  await t.rejects(preflight(testConfig(dir, { multilingual: { mode: 'select', arc: arc(missing) } }), 'f.yaml', { create: false }), {
    message: new RegExp(`^f\\.yaml: multilingual\\.arc\\.privateKeyFile: ${missing} is unusable: ENOENT$`),
  });
  const junk = join(dir, 'junk.pem');
  writeFileSync(junk, 'not a key\n');
  await t.rejects(preflight(testConfig(dir, { multilingual: { mode: 'select', arc: arc(junk) } }), 'f.yaml', { create: false }), {
    message: new RegExp(`^f\\.yaml: multilingual\\.arc\\.privateKeyFile: ${junk} is not a private key: `),
  });
  const good = join(dir, 'arc.pem');
  writeFileSync(good, generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ type: 'pkcs8', format: 'pem' }));
  t.same(await preflight(testConfig(dir, { multilingual: { mode: 'select', arc: arc(good) } }), 'f.yaml', { create: false }), []);
  t.same(await preflight(testConfig(dir, { multilingual: { mode: 'off', arc: arc(missing) } }), 'f.yaml', { create: false }), [], 'not loaded while the step is off');
});
