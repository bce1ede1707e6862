import { loadConfig, resolveConfigPath } from '../config/load.js';
import { CliError, parseCommandArgs, UsageError, writeOutput, type CliIO, type Command } from './command.js';
import { openStoreForCli } from './store-access.js';
import { KEY_KINDS, trace, type KeyKind } from './trace/collect.js';
import { formatTrace } from './trace/format.js';

function wantsColour(io: CliIO): boolean {
  return (io.stdout as { isTTY?: boolean }).isTTY === true && io.env.NO_COLOR === undefined && io.env.TERM !== 'dumb';
}

/** `mailbag trace KEY`: what happened to a message, on both sides of the upstream hop. */
export const traceCommand: Command = {
  name: 'trace',
  summary: 'what happened to a message: upstream verdict and maillog, receipt, IMP hops, languages, attempts',
  usage: `mailbag trace KEY [--by qid|upstream|message-id|guid] [--json] [--config FILE]

KEY is a mailbag qid, an upstream queue id (PoD filter.qid or the sendmail qid), a
Message-ID (with or without <>) or a PoD guid / X-Proofpoint-GUID; its kind is detected
unless --by names it (a qid of another mailbag that forwarded the message here over IMP
works too). Prints one timeline per match, oldest entry first, of everything the
store knows on both sides of the hop; several matches (a reused Message-ID) newest
first. Nothing found: exit 1. --json prints {key, by, matches: [...]}. Colour on a
terminal only (NO_COLOR turns it off). Safe while the gateway runs.`,
  async run(argv, io) {
    const { values, positionals } = parseCommandArgs(argv, { by: { type: 'string' }, json: { type: 'boolean' }, config: { type: 'string', short: 'c' } });
    if (positionals.length !== 1) throw new UsageError('expected one KEY (a qid, upstream qid, Message-ID or guid)');
    const key = positionals[0]!.trim();
    if (key === '') throw new UsageError('KEY is empty');
    const by = values.by as KeyKind | undefined;
    if (by !== undefined && !KEY_KINDS.includes(by)) throw new UsageError(`--by must be one of ${KEY_KINDS.join(', ')}, not ${JSON.stringify(values.by)}`);
    const config = loadConfig(resolveConfigPath(values.config, io.env));
    const store = openStoreForCli(config.store.path, { create: false });
    try {
      const result = trace(store, key, by);
      if (!result) throw new CliError(`nothing found for ${by ? `${by} ` : ''}${key}`, 'ERR_MAILBAG_TRACE_NOT_FOUND');
      await writeOutput(io, values.json ? JSON.stringify(result) + '\n' : formatTrace(result, { colour: wantsColour(io) }));
      return 0;
    } finally {
      store.close();
    }
  },
};
