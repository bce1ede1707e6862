import { loadConfig, resolveConfigPath } from '../config/load.js';
import { isQid } from '../delivery/qid.js';
import { recoverUnknown, type RecoverResult } from '../delivery/recover.js';
import { removeFile, Spool } from '../delivery/spool.js';
import type { Store } from '../store/store.js';
import { CliError, UsageError, parseCommandArgs, writeOutput, type CliIO, type Command } from './command.js';
import { formatList, formatShow } from './queue/format.js';
import { openStoreForCli } from './store-access.js';

const OPTIONS = { config: { type: 'string', short: 'c' }, json: { type: 'boolean' } } as const;

/** Opens the configured store (never creating one) for the length of `fn`. */
async function withStore<T>(
  argv: string[],
  io: CliIO,
  wantQid: boolean,
  fn: (store: Store, opts: { qid: string; json: boolean; config: ReturnType<typeof loadConfig> }) => Promise<T>,
): Promise<T> {
  const { values, positionals } = parseCommandArgs(argv, OPTIONS, true);
  if (wantQid && positionals.length !== 1) throw new UsageError('expected exactly one QID');
  if (!wantQid && positionals.length) throw new UsageError(`unexpected argument '${positionals[0]}'`);
  const qid = (positionals[0] ?? '').toUpperCase();
  if (wantQid && !isQid(qid)) throw new CliError(`'${positionals[0]}' is not a queue id`, 'ERR_MAILBAG_QID');
  const config = loadConfig(resolveConfigPath(values.config, io.env));
  const store = openStoreForCli(config.store.path, { create: false });
  try {
    return await fn(store, { qid, json: !!values.json, config });
  } finally {
    store.close();
  }
}

function mustExist(store: Store, qid: string) {
  const m = store.queue.message(qid);
  if (!m) throw new CliError(`no message ${qid} in the queue`, 'ERR_MAILBAG_UNKNOWN_QID');
  return m;
}

const list: Command = {
  name: 'list',
  summary: 'list messages not yet finished',
  usage: 'mailbag queue list [--config FILE] [--json]',
  run: (argv, io) =>
    withStore(argv, io, false, async (store, o) => {
      const rows = store.queue.list();
      await writeOutput(io, o.json ? JSON.stringify(rows) + '\n' : formatList(rows));
    }),
};

const show: Command = {
  name: 'show',
  summary: 'show a message, its recipients and every delivery attempt',
  usage: 'mailbag queue show QID [--config FILE] [--json]',
  run: (argv, io) =>
    withStore(argv, io, true, async (store, o) => {
      const m = mustExist(store, o.qid);
      const rcpts = store.queue.recipients(o.qid);
      const attempts = store.queue.attempts(o.qid);
      await writeOutput(io, o.json ? JSON.stringify({ message: m, recipients: rcpts, attempts }) + '\n' : formatShow(m, rcpts, attempts));
    }),
};

const retry: Command = {
  name: 'retry',
  summary: 'make the deferred recipients of a message due now',
  usage:
    'mailbag queue retry QID [--config FILE]\n\nA running gateway picks them up within about a second. A held message (its spool\n' +
    'file failed the check before delivery) is released: put the right file back first, or it is held again.',
  run: (argv, io) =>
    withStore(argv, io, true, async (store, o) => {
      mustExist(store, o.qid);
      const released = store.queue.releaseHold(o.qid);
      const n = store.queue.retryNow(o.qid);
      await writeOutput(io, `${o.qid}: ${released ? 'hold released; ' : ''}${n} recipient(s) due now\n`);
    }),
};

const del: Command = {
  name: 'delete',
  summary: 'drop the unfinished recipients of a message (no bounce) and its spool file',
  usage:
    'mailbag queue delete QID [--config FILE]\n\n' +
    'If an attempt for the message is in flight, it finishes; what it delivers stays delivered,\n' +
    'and the gateway removes the spool file when the attempt ends.',
  run: (argv, io) =>
    withStore(argv, io, true, async (store, o) => {
      const m = mustExist(store, o.qid);
      const n = store.queue.markDeleted(o.qid);
      const done = store.queue.finishIfDone(o.qid);
      if (done) for (const path of done.spoolFiles) await removeFile(path);
      const tail = done
        ? '; spool file removed'
        : m.state === 'done'
          ? '; the message was already finished'
          : '; an attempt is in flight: the gateway removes the spool file when it ends';
      await writeOutput(io, `${o.qid}: ${n} recipient(s) deleted${tail}\n`);
    }),
};

const RECOVER_WORDS: Record<RecoverResult['outcome'], string> = {
  queued: 'queued again from its envelope',
  restored: 'put back in the spool for its queued message',
  'already-queued': 'left: already queued',
  'already-done': 'left: already finished',
  invalid: 'left: not a valid spool file',
};

const recover: Command = {
  name: 'recover',
  summary: 'queue again the spool files the store does not know (kept in the spool\'s unknown/ directory)',
  usage:
    'mailbag queue recover [--config FILE] [--json]\n\n' +
    'At start-up the gateway moves spool files whose message the store does not know (a lost or\n' +
    'replaced store, a changed store.path) to SPOOL/unknown/. This queues each again from the\n' +
    'envelope in the file (sender, recipients, received time, qid). Running it again changes\n' +
    'nothing; files that are not valid spool files are reported and left. Exit 1 if any was left\n' +
    'as invalid.',
  run: (argv, io) =>
    withStore(argv, io, false, async (store, o) => {
      const spool = new Spool(o.config.spool.dir);
      const results = await recoverUnknown(spool, store);
      if (o.json) {
        await writeOutput(io, JSON.stringify(results) + '\n');
      } else {
        const lines = results.map((r) => `${r.file}: ${RECOVER_WORDS[r.outcome]}${r.qid && r.qid !== r.file ? ` (${r.qid})` : ''}${r.reason ? `: ${r.reason}` : ''}`);
        const queued = results.filter((r) => r.outcome === 'queued' || r.outcome === 'restored').length;
        lines.push(results.length === 0 ? 'no spool files to recover' : `${queued} of ${results.length} file(s) queued`);
        await writeOutput(io, lines.join('\n') + '\n');
      }
      const invalid = results.filter((r) => r.outcome === 'invalid').length;
      if (invalid === 0) return 0;
      // Exit 1 says something went wrong, so stderr says what (stdout has each file's line).
      io.stderr.write(`mailbag queue recover: ${invalid} file(s) in ${spool.unknownDir} are not valid spool files and were left there\n`);
      return 1;
    }),
};

export const queueCommand: Command = {
  name: 'queue',
  summary: 'inspect and manage the delivery queue (works while the gateway runs)',
  usage: 'mailbag queue <list|show|retry|delete|recover> [QID] [--config FILE]',
  subcommands: [list, show, retry, del, recover],
};
