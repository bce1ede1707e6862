import type { Command } from './command.js';
import { dumpCommand } from './imp/dump.js';
import { packCommand } from './imp/pack.js';

/** `mailbag imp ...`: RFC 753 message-bag tools. */
export const impCommand: Command = {
  name: 'imp',
  summary: 'RFC 753 IMP tools: dump and pack message-bags',
  usage: 'mailbag imp <command> [options]',
  subcommands: [dumpCommand, packCommand],
};
