import { stringify } from 'yaml';
import { loadConfig, resolveConfigPath } from '../config/load.js';
import { printableConfig } from '../config/printable.js';
import { parseCommandArgs, writeOutput, type Command } from './command.js';
import { preflight } from './preflight.js';

const show: Command = {
  name: 'show',
  summary: 'print the effective configuration (defaults filled in, secrets redacted) as YAML',
  usage:
    'mailbag config show [--config FILE]\n\n' +
    'Durations print in milliseconds, sizes in octets. Passwords, tokens, secrets, credentials, API and\n' +
    'private keys (also in queue.rewrite.options) print as <redacted>; paths of secret files and\n' +
    'names of variables (...File, ...Env) are shown.\n' +
    'The output is a valid config file (put the secrets back before using it).',
  async run(argv, io) {
    const { values } = parseCommandArgs(argv, { config: { type: 'string', short: 'c' } }, false);
    const file = resolveConfigPath(values.config, io.env);
    const config = loadConfig(file);
    await writeOutput(io, `# effective config from ${file}\n${stringify(printableConfig(config))}`);
  },
};

const check: Command = {
  name: 'check',
  summary: 'validate a configuration file as start does; exit 1 with the bad key path if invalid',
  usage:
    'mailbag config check [--config FILE]\n\n' +
    'Runs the checks start runs: the schema, listen hosts that resolve, spool and store\n' +
    'paths that can be created and written (nothing is created). Warnings go to stderr.',
  async run(argv, io) {
    const { values } = parseCommandArgs(argv, { config: { type: 'string', short: 'c' } }, false);
    const file = resolveConfigPath(values.config, io.env);
    const warnings = await preflight(loadConfig(file), file, { create: false });
    for (const w of warnings) io.stderr.write(`mailbag config check: warning: ${w}\n`);
    await writeOutput(io, `config ok: ${file}\n`);
  },
};

export const configCommand: Command = {
  name: 'config',
  summary: 'inspect and validate configuration',
  usage: 'mailbag config <show|check> [--config FILE]',
  subcommands: [show, check],
};
