// A reader that goes away (`mailbag report ... | head`) ends the command quietly: no
// unhandled EPIPE with a stack trace, exit 0 as for a command whose output was all read.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import t from 'tap';

const MAIN = fileURLToPath(new URL('../src/cli/main.ts', import.meta.url));

t.test('stdout closed by its reader: no crash, no stack trace', async (t) => {
  const child = spawn(process.execPath, ['--import=tsx', MAIN, 'imp', 'encode', '--rcpt', 'a@example.test'], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  // Several MiB of output, far more than a pipe holds: the writes outlive the reader.
  child.stdin.end(`Subject: big\r\n\r\n${'x'.repeat(76).concat('\r\n').repeat(80_000)}`);
  child.stdout.once('data', () => child.stdout.destroy());
  const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
  t.notMatch(stderr, /EPIPE|Unhandled|at /, 'nothing on stderr about the closed pipe');
  t.equal(code, 0);
});
