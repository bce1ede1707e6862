import { loadConfig, resolveConfigPath } from '../config/load.js';
import { isQid } from '../delivery/qid.js';
import { removeFile } from '../delivery/spool.js';
import type { Store } from '../store/store.js';
import { CliError, UsageError, parseCommandArgs, writeOutput, type CliIO, type Command } from './command.js';
import { formatList, formatShow } from './queue/format.js';
import { openStoreForCli } from './store-access.js';

const OPTIONS = { config: { type: 'string', short: 'c' }, json: { type: 'boolean' } } as const;

/** Opens the configured store (never creating one) for the length of `fn`. */
async function withStore<T>(argv: string[], io: CliIO, wantQid: boolean, fn: (store: Store, opts: { qid: string; json: boolean }) => Promise<T>): Promise<T> {
  const { values, positionals } = parseCommandArgs(argv, OPTIONS, true);
  if (wantQid && positionals.length !== 1) throw new UsageError('expected exactly one QID');
  if (!wantQid && positionals.length) throw new UsageError(`unexpected argument '${positionals[0]}'`);
  const qid = (positionals[0] ?? '').toUpperCase();
  if (wantQid && !isQid(qid)) throw new CliError(`'${positionals[0]}' is not a queue id`, 'ERR_MAILBAG_QID');
  const config = loadConfig(resolveConfigPath(values.config, io.env));
  const store = openStoreForCli(config.store.path, { create: false });
  try {
    return await fn(store, { qid, json: !!values.json });
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
  usage: 'mailbag queue retry QID [--config FILE]\n\nA running gateway picks them up within about a second.',
  run: (argv, io) =>
    withStore(argv, io, true, async (store, o) => {
      mustExist(store, o.qid);
      const n = store.queue.retryNow(o.qid);
      await writeOutput(io, `${o.qid}: ${n} recipient(s) due now\n`);
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
      if (done) await removeFile(done.spool_path);
      const tail = done
        ? '; spool file removed'
        : m.state === 'done'
          ? '; the message was already finished'
          : '; an attempt is in flight: the gateway removes the spool file when it ends';
      await writeOutput(io, `${o.qid}: ${n} recipient(s) deleted${tail}\n`);
    }),
};

export const queueCommand: Command = {
  name: 'queue',
  summary: 'inspect and manage the delivery queue (works while the gateway runs)',
  usage: 'mailbag queue <list|show|retry|delete> [QID] [--config FILE]',
  subcommands: [list, show, retry, del],
};
