import { stringify } from 'yaml';
import { loadConfig, resolveConfigPath } from '../config/load.js';
import { parseCommandArgs, writeOutput, type Command } from './command.js';

const show: Command = {
  name: 'show',
  summary: 'print the effective configuration (defaults filled in) as YAML',
  usage: 'mailbag config show [--config FILE]',
  async run(argv, io) {
    const { values } = parseCommandArgs(argv, { config: { type: 'string', short: 'c' } }, false);
    const file = resolveConfigPath(values.config, io.env);
    const config = loadConfig(file);
    await writeOutput(io, `# effective config from ${file}\n${stringify(config)}`);
  },
};

const check: Command = {
  name: 'check',
  summary: 'validate a configuration file; exit 1 with the bad key path if invalid',
  usage: 'mailbag config check [--config FILE]',
  async run(argv, io) {
    const { values } = parseCommandArgs(argv, { config: { type: 'string', short: 'c' } }, false);
    const file = resolveConfigPath(values.config, io.env);
    loadConfig(file);
    await writeOutput(io, `config ok: ${file}\n`);
  },
};

export const configCommand: Command = {
  name: 'config',
  summary: 'inspect and validate configuration',
  usage: 'mailbag config <show|check> [--config FILE]',
  subcommands: [show, check],
};
