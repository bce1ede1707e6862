import type { Command } from './command.js';
import { impDecodeCommand } from './imp/decode.js';
import { dumpCommand } from './imp/dump.js';
import { impEncodeCommand } from './imp/encode.js';
import { packCommand } from './imp/pack.js';
import { impSendCommand } from './imp/send.js';
import { impProbeCommand } from './imp/probe.js';

/** `mailbag imp ...`: RFC 753 message-bag tools. */
export const impCommand: Command = {
  name: 'imp',
  summary: 'RFC 753 IMP tools: dump and pack message-bags, encode and decode MIME, send to and probe a peer MPM',
  usage: 'mailbag imp <command> [options]',
  subcommands: [dumpCommand, packCommand, impEncodeCommand, impDecodeCommand, impSendCommand, impProbeCommand],
};
