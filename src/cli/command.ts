import { parseArgs, type ParseArgsConfig } from 'node:util';
import { readFile } from 'node:fs/promises';

/** Streams a command talks to; tests pass their own. */
export interface CliIO {
  stdin: NodeJS.ReadableStream;
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  env: NodeJS.ProcessEnv;
}

/**
 * One CLI command. A command either runs (`run`) or groups `subcommands`.
 * `run` resolves to the exit code (0 when it returns nothing).
 */
export interface Command {
  name: string;
  summary: string;
  /** Usage line(s) and option list shown by `--help`. */
  usage: string;
  subcommands?: Command[];
  run?(argv: string[], io: CliIO): Promise<number | void>;
}

/** Bad invocation: exit code 2. */
export class UsageError extends Error {
  readonly code = 'ERR_MAILBAG_USAGE';
  readonly exitCode = 2;
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** The command ran and failed: exit code 1 with this one-line message. */
export class CliError extends Error {
  readonly code: string;
  readonly exitCode = 1;
  constructor(message: string, code = 'ERR_MAILBAG_CLI') {
    super(message);
    this.name = 'CliError';
    this.code = code;
  }
}

type Options = NonNullable<ParseArgsConfig['options']>;

/** `util.parseArgs` with strict checking whose errors become usage errors. */
export function parseCommandArgs<O extends Options>(argv: string[], options: O, allowPositionals = true) {
  try {
    return parseArgs({ args: argv, options: { ...options, help: { type: 'boolean', short: 'h' } }, allowPositionals, strict: true });
  } catch (err) {
    throw new UsageError((err as Error).message.split('\n')[0] ?? 'bad arguments');
  }
}

/** Reads FILE, or all of stdin when FILE is omitted or `-`. */
export async function readInput(file: string | undefined, io: CliIO): Promise<Buffer> {
  if (file !== undefined && file !== '-') {
    try {
      return await readFile(file);
    } catch (err) {
      throw new CliError(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  }
  const chunks: Buffer[] = [];
  for await (const chunk of io.stdin) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer));
  return Buffer.concat(chunks);
}

/** Writes and waits for the stream to accept it, so large outputs are not cut at exit. */
export function writeOutput(io: CliIO, data: string | Uint8Array): Promise<void> {
  return new Promise((resolve, reject) => {
    io.stdout.write(data, (err) => (err ? reject(err) : resolve()));
  });
}
