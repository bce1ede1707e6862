#!/usr/bin/env node
import { pathToFileURL } from 'node:url';
import { readFileSync, realpathSync } from 'node:fs';
import { CliError, UsageError, type CliIO, type Command } from './command.js';
import { commands } from './commands.js';
import { ConfigError } from '../config/load.js';

function helpText(cmd: Command, path: string[]): string {
  const lines = [`usage: ${cmd.usage}`, '', cmd.summary];
  if (cmd.subcommands?.length) {
    lines.push('', 'commands:');
    const width = Math.max(...cmd.subcommands.map((c) => c.name.length));
    for (const sub of cmd.subcommands) lines.push(`  ${sub.name.padEnd(width)}  ${sub.summary}`);
    lines.push('', `Run '${[...path, '<command>'].join(' ')} --help' for a command's options.`);
    if (path.length === 1) lines.push(`'mailbag --version' (or -V) prints the version.`);
  }
  return lines.join('\n') + '\n';
}

/** package.json two levels up from both src/cli and dist/cli. */
const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string; description: string };

/** The installed version, as `mailbag --version` prints it. */
export const VERSION = pkg.version;

export const root: Command = {
  name: 'mailbag',
  // One description of what is built, shared with package.json.
  summary: pkg.description,
  usage: 'mailbag <command> [options]\n       mailbag --version',
  subcommands: commands,
};

/** Runs the CLI and resolves to its exit code: 0 ok, 1 failure, 2 usage error. */
export async function runCli(argv: string[], io: CliIO): Promise<number> {
  let cmd = root;
  const path = ['mailbag'];
  let rest = argv;
  try {
    if (rest.length === 1 && (rest[0] === '--version' || rest[0] === '-V')) {
      io.stdout.write(`mailbag ${VERSION}\n`);
      return 0;
    }
    while (cmd.subcommands) {
      const [word, ...tail] = rest;
      if (word === undefined || word === '--help' || word === '-h' || word === 'help') {
        io[word === undefined ? 'stderr' : 'stdout'].write(helpText(cmd, path));
        return word === undefined ? 2 : 0;
      }
      const next = cmd.subcommands.find((c) => c.name === word);
      if (!next) throw new UsageError(`unknown command '${word}' (see '${path.join(' ')} --help')`);
      cmd = next;
      path.push(word);
      rest = tail;
    }
    if (rest.includes('--help') || rest.includes('-h')) {
      io.stdout.write(helpText(cmd, path));
      return 0;
    }
    const code = await cmd.run!(rest, io);
    return code ?? 0;
  } catch (err) {
    const e = err as Error & { exitCode?: number };
    const message = (e.message || String(err)).split('\n')[0];
    io.stderr.write(`${path.join(' ')}: ${message}\n`);
    if (err instanceof UsageError) return 2;
    if (err instanceof CliError || err instanceof ConfigError) return 1;
    if (typeof e.exitCode === 'number') return e.exitCode;
    return 1;
  }
}

/** Process entry point: real stdio, exit code on process.exitCode. */
export async function main(argv = process.argv.slice(2)): Promise<void> {
  const io: CliIO = { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr, env: process.env };
  // The reader went away (`mailbag report | head`): what it wanted is written, stop quietly.
  // The gateway's logger writes to fd 1 on its own, so this is the commands' output only.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EPIPE') throw err;
    process.exit(process.exitCode ?? 0);
  });
  try {
    process.exitCode = await runCli(argv, io);
  } catch (err) {
    process.stderr.write(`mailbag: ${(err as Error).message}\n`);
    process.exitCode = 1;
  }
}

const invokedDirectly = (() => {
  try {
    return process.argv[1] !== undefined && import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href;
  } catch {
    return false;
  }
})();

if (invokedDirectly) void main();
