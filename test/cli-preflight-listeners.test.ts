// The shared preflight (config check and start) covers the IMP acceptor and the PoD
// publisher too: their TLS key and certificate, and their listen hosts.
import t from 'tap';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { validateConfig } from '../src/config/load.js';
import { preflight } from '../src/cli/preflight.js';
import { cli } from './helpers/cli.js';
import { tempDir, testConfigInput } from './helpers/gateway.js';

const MAIN = fileURLToPath(new URL('../src/cli/main.ts', import.meta.url));
const { dir, cleanup } = tempDir('cli-preflight-listeners');
t.teardown(cleanup);
let n = 0;
function configFile(input: Record<string, unknown>): string {
  const file = join(dir, `c${n++}.yaml`);
  writeFileSync(file, stringify(input));
  return file;
}

/** `mailbag start` as a child process; a start that hangs is killed and fails the test. */
function run(args: string[]): Promise<{ code: number | null; stderr: string }> {
  const child = spawn(process.execPath, ['--import=tsx', MAIN, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const guard = setTimeout(() => child.kill('SIGKILL'), 60_000);
  return new Promise((resolve) =>
    child.on('exit', (code) => {
      clearTimeout(guard);
      resolve({ code, stderr });
    }),
  );
}

t.test('IMP and PoD publisher listeners: TLS files and listen hosts are checked by the shared preflight', async (t) => {
  const garbage = join(dir, 'garbage.pem');
  writeFileSync(garbage, 'not a PEM file\n');
  const missing = join(dir, 'no-such-dir', 'key.pem');
  const cases: Array<[string, Record<string, unknown>, RegExp]> = [
    ['imp.tls key missing', { imp: { listen: { host: '127.0.0.1', port: 0 }, tls: { key: missing, cert: garbage } } }, /imp\.tls\.key: .*no-such-dir\/key\.pem is unusable: ENOENT/],
    [
      'pod.publisher.tls not a certificate',
      { pod: { publisher: { enabled: true, listen: { host: '127.0.0.1', port: 0 }, secretFile: join(dir, 'pod.secret'), tls: { key: garbage, cert: garbage } } } },
      /pod\.publisher\.tls: .*garbage\.pem and .*garbage\.pem are unusable: /,
    ],
  ];
  for (const [what, overrides, why] of cases) {
    const config = configFile(testConfigInput(dir, overrides));
    const check = await cli(['config', 'check', '--config', config]);
    t.equal(check.code, 1, `config check refuses it, ${what}`);
    t.match(check.stderr, why, `config check, ${what}`);
    const start = await run(['start', '--config', config]);
    t.equal(start.code, 1, `start, ${what}: ${start.stderr}`);
    t.match(start.stderr, why, `start, ${what}`);
    t.equal(start.stderr.trim().split('\n').length, 1, `start, ${what}: one line`);
  }
  const config = validateConfig(
    testConfigInput(dir, {
      imp: { listen: { host: 'imp.nowhere.invalid', port: 0 } },
      pod: { publisher: { enabled: true, listen: { host: 'pod.nowhere.invalid', port: 0 } } },
    }),
  );
  const notFound = () => Promise.reject(Object.assign(new Error('getaddrinfo ENOTFOUND'), { code: 'ENOTFOUND' }));
  await t.rejects(preflight(config, 'f.yaml', { create: false, resolveHost: notFound }), {
    message: /imp\.listen\.host: cannot resolve "imp\.nowhere\.invalid" \(ENOTFOUND\); pod\.publisher\.listen\.host: cannot resolve "pod\.nowhere\.invalid"/,
  });
});
