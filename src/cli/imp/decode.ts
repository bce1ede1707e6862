// `mailbag imp decode`: an RFC 753 message-bag (or shipping unit) -> MIME messages.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { bagToMime } from '../../imp/mime/bag.js';
import { CliError, UsageError, parseCommandArgs, readInput, writeOutput, type Command } from '../command.js';
import { impLimits, onePositional, withImpErrors } from './common.js';
import { makeDir, PathError } from '../preflight.js';

export const impDecodeCommand: Command = {
  name: 'decode',
  summary: 'convert an RFC 753 message-bag to MIME message(s)',
  usage: [
    'mailbag imp decode [--out-dir DIR] [--config FILE] [FILE.bag] > out.eml',
    '',
    'Reads a bag or shipping unit from FILE.bag (stdin when omitted or -). A bag with one',
    'DELIVER message is written to stdout; with --out-dir every message is written to',
    'DIR/TN.eml (TN = its transaction number) and a line "FILE<TAB>RECIPIENT" is printed',
    'for each. A bag with several messages needs --out-dir.',
    '',
    'options:',
    '  --out-dir DIR   write one file per message into DIR (created if missing)',
    '  --config FILE   configuration file for the decoder limits imp.maxDepth and imp.maxBagBytes',
  ].join('\n'),
  async run(argv, io) {
    const { values, positionals } = parseCommandArgs(argv, { 'out-dir': { type: 'string', short: 'o' }, config: { type: 'string', short: 'c' } });
    const file = onePositional(positionals);
    const limits = impLimits(values.config, io);
    const input = await readInput(file, io);
    const messages = await withImpErrors(() => bagToMime(input, limits));
    const outDir = values['out-dir'];
    if (messages.length === 0) throw new CliError('the bag holds no DELIVER message');
    if (outDir === undefined) {
      if (messages.length !== 1) throw new UsageError(`the bag holds ${messages.length} messages; use --out-dir DIR to write one file each`);
      await writeOutput(io, messages[0]!.raw);
      return;
    }
    await makeOutDir(outDir);
    const used = new Set<string>();
    const lines: string[] = [];
    for (const [i, m] of messages.entries()) {
      // tns are unique per originating ihn; a bag relayed from several MPMs may repeat one.
      let name = `${m.tid.tn}.eml`;
      if (used.has(name)) name = `${m.tid.tn}-${i}.eml`;
      used.add(name);
      await writeFile(join(outDir, name), m.raw);
      lines.push(`${name}\t${m.recipient}\n`);
    }
    await writeOutput(io, lines.join(''));
  },
};

async function makeOutDir(dir: string): Promise<void> {
  try {
    await makeDir(dir);
  } catch (err) {
    if (err instanceof PathError) throw new CliError(`cannot create --out-dir ${dir}: ${err.reason} at ${err.at}`);
    throw err;
  }
}
