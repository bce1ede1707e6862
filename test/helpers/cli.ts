import { PassThrough, Readable } from 'node:stream';
import { runCli } from '../../src/cli/main.js';
import type { CliIO } from '../../src/cli/command.js';

export interface CliResult {
  code: number;
  stdout: Buffer;
  stderr: string;
}

/** Runs the CLI in-process with captured stdio. */
export async function cli(argv: string[], opts: { stdin?: Buffer | string; env?: NodeJS.ProcessEnv } = {}): Promise<CliResult> {
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  stdout.on('data', (c: Buffer) => out.push(c));
  stderr.on('data', (c: Buffer) => err.push(c));
  const io: CliIO = {
    stdin: Readable.from(opts.stdin === undefined ? [] : [Buffer.from(opts.stdin)]),
    stdout,
    stderr,
    env: opts.env ?? {},
  };
  const code = await runCli(argv, io);
  return { code, stdout: Buffer.concat(out), stderr: Buffer.concat(err).toString('utf8') };
}
