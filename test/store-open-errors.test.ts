// Errors opening the store at start-up name the file and say what to do, in one line:
// a file that is not a database, a directory that is missing and cannot be created, a
// directory or file the gateway's user cannot write.
import t from 'tap';
import { spawn } from 'node:child_process';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { startGateway } from '../src/gateway/gateway.js';
import { UNPRIVILEGED_UID, unprivilegedCannotRead } from './helpers/env.js';
import { tempDir, testConfig, writeTestConfig } from './helpers/gateway.js';

const MAIN = fileURLToPath(new URL('../src/cli/main.ts', import.meta.url));
const isRoot = process.getuid?.() === 0;
/** As root these run the gateway as an unprivileged user, who must be able to read the checkout. */
const unprivileged = { skip: unprivilegedCannotRead(MAIN) };

t.test('a file that is not a database', async (t) => {
  const { dir, cleanup } = tempDir('store-notadb');
  t.teardown(cleanup);
  const store = join(dir, 'mailbag.db');
  writeFileSync(store, 'these are the notes of an operator, not an SQLite database, but long enough to look like one\n'.repeat(20));
  await t.rejects(startGateway(testConfig(dir)), {
    code: 'ERR_MAILBAG_STORE_OPEN',
    message: `cannot open the store ${store}: it is not a mailbag store (SQLITE_NOTADB: file is not a database): set store.path to the gateway's store, or move this file away to start with an empty store`,
  });
});

t.test('a directory that is missing and cannot be created', async (t) => {
  const { dir, cleanup } = tempDir('store-nodir');
  t.teardown(cleanup);
  writeFileSync(join(dir, 'var'), 'a file where a directory should be\n');
  const store = join(dir, 'var', 'db', 'mailbag.db');
  await t.rejects(startGateway(testConfig(dir, { store: { path: store } })), {
    code: 'ERR_MAILBAG_STORE_OPEN',
    message: `cannot open the store ${store}: its directory ${join(dir, 'var', 'db')} does not exist and cannot be created (ENOTDIR): create it, writable by the gateway's user, or set store.path to a writable location`,
  });
});

/** `mailbag start` as a user who may not write `storeDir` (nobody when the tests run as root). */
async function startAsOtherUser(dir: string, storePath: string): Promise<{ code: number | null; stderr: string }> {
  chmodSync(dir, 0o755);
  const spool = join(dir, 'spool');
  mkdirSync(spool, { recursive: true });
  chmodSync(spool, 0o777);
  const file = writeTestConfig(dir, { store: { path: storePath } });
  chmodSync(file, 0o644);
  // Without the test runner's hooks (it adds them to every child's NODE_OPTIONS): they
  // write under the checkout, which the other user may not.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^_?TAP/.test(k)));
  const child = spawn('/bin/sh', ['-c', 'unset NODE_OPTIONS; exec "$0" "$@"', process.execPath, '--import=tsx', MAIN, 'start', '--config', file], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: isRoot ? { ...env, HOME: '/tmp' } : env,
    ...(isRoot ? { uid: UNPRIVILEGED_UID, gid: UNPRIVILEGED_UID } : {}),
  });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const code = await new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
  return { code, stderr };
}

t.test('a store directory the gateway cannot write', unprivileged, async (t) => {
  const { dir, cleanup } = tempDir('store-rodir');
  t.teardown(() => {
    chmodSync(join(dir, 'db'), 0o755);
    cleanup();
  });
  mkdirSync(join(dir, 'db'), { mode: isRoot ? 0o755 : 0o555 });
  const store = join(dir, 'db', 'mailbag.db');
  const { code, stderr } = await startAsOtherUser(dir, store);
  t.equal(code, 1);
  t.match(stderr, new RegExp(`^mailbag start: cannot open the store ${store}: its directory ${join(dir, 'db')} is not writable \\(SQLITE_CANTOPEN: unable to open database file\\): SQLite creates ${store}-wal and ${store}-shm there; give the gateway's user write access\\n$`));
});

t.test('a store file the gateway cannot write', unprivileged, async (t) => {
  const { dir, cleanup } = tempDir('store-rofile');
  t.teardown(cleanup);
  mkdirSync(join(dir, 'db'), { mode: 0o777 });
  chmodSync(join(dir, 'db'), 0o777);
  const store = join(dir, 'db', 'mailbag.db');
  new Database(store).close();
  chmodSync(store, 0o444);
  const { code, stderr } = await startAsOtherUser(dir, store);
  t.equal(code, 1);
  t.match(stderr, new RegExp(`^mailbag start: cannot open the store ${store}: the file is not writable \\(SQLITE_\\w+: [^)]*\\): give the gateway's user write access to it\\n$`));
});
