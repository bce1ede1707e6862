import { loadConfig, resolveConfigPath } from '../config/load.js';
import { CliError, parseCommandArgs, UsageError, writeOutput, type Command } from './command.js';
import { archiveWindow, HOUR_MS } from '../pod/consumer.js';
import { oneLine } from './one-line.js';
import { PodError } from '../pod/errors.js';
import { parsePodTime } from '../pod/time.js';
import { resolveToken } from '../config/pod-tokens.js';
import { backfillWindow } from './pod/backfill.js';
import { importFiles } from './pod/import.js';
import { formatStreamStatus, streamStatusViews } from './pod/status.js';
import { openStoreForCli, withCliStore } from './store-access.js';
import { parseDuration } from '../config/units.js';
import { loadOrCreateSecret, PodSecretError } from '../gateway/pod-secret.js';
import { signToken } from '../pod/jwt.js';

const CONFIG = { config: { type: 'string', short: 'c' } } as const;


const importCmd: Command = {
  name: 'import',
  summary: 'store PoD message/maillog events from files (JSON lines, a JSON array or pretty-printed JSON)',
  usage: `mailbag pod import FILE... [--json] [--config FILE]

FILE is JSON lines (one event per line), a JSON array of events, or pretty-printed events
one after another (first line a lone '{', as jq . prints them); '-' reads stdin.
Each event is validated, normalised and stored like an event from a PoD stream; an event
already stored counts as a duplicate, one that cannot be taken is kept as a dead letter
('mailbag pod dead-letters'). Prints: read N, stored N, duplicates N, dead-lettered N.
--json prints {"read":N,"stored":N,"duplicates":N,"deadLettered":N}.`,
  async run(argv, io) {
    const { values, positionals } = parseCommandArgs(argv, { ...CONFIG, json: { type: 'boolean' } });
    if (!positionals.length) throw new UsageError('expected at least one FILE (or - for stdin)');
    if (positionals.filter((f) => f === '-').length > 1) throw new UsageError("stdin ('-') can be read only once");
    const s = await withCliStore(values.config, io, (store) => importFiles(positionals, store.pod, io));
    const line = values.json
      ? JSON.stringify({ read: s.read, stored: s.stored, duplicates: s.duplicates, deadLettered: s.deadLettered })
      : `read ${s.read}, stored ${s.stored}, duplicates ${s.duplicates}, dead-lettered ${s.deadLettered}`;
    await writeOutput(io, line + '\n');
  },
};

function preview(raw: Buffer): string {
  const text = oneLine(raw.subarray(0, 200).toString('utf8').replace(/\s+/g, ' '));
  return text.length > 120 ? `${text.slice(0, 117)}...` : text;
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/** The payload as text when it is UTF-8; otherwise in base64, so no byte is lost. */
function rawForJson(raw: Buffer): { raw: string | null; rawBase64?: string } {
  try {
    return { raw: strictUtf8.decode(raw) };
  } catch {
    return { raw: null, rawBase64: raw.toString('base64') };
  }
}

const deadLetters: Command = {
  name: 'dead-letters',
  summary: 'list PoD events that could not be stored, with the reason',
  usage: `mailbag pod dead-letters [--json] [--limit N] [--config FILE]

One line each: id, time received, source (stream, or import FILE:POSITION), error code,
reason and the start of the payload (control characters shown as \\n, \\t, \\xHH). --json prints
every field with the whole payload kept: raw as text, or rawBase64 (and raw null) when it is not UTF-8.`,
  async run(argv, io) {
    const { values, positionals } = parseCommandArgs(argv, { ...CONFIG, json: { type: 'boolean' }, limit: { type: 'string' } });
    if (positionals.length) throw new UsageError(`unexpected argument '${positionals[0]}'`);
    let limit = -1;
    if (values.limit !== undefined) {
      if (!/^[1-9]\d*$/.test(values.limit)) throw new UsageError('--limit must be a positive integer');
      limit = Number(values.limit);
    }
    const rows = await withCliStore(values.config, io, async (store) => store.pod.deadLetters(limit));
    if (values.json) {
      const out = rows.map((r) => ({
        id: r.id,
        receivedAt: new Date(r.receivedAt).toISOString(),
        source: r.source,
        code: r.code,
        reason: r.reason,
        rawBytes: r.rawBytes,
        rawTruncated: r.rawTruncated,
        ...rawForJson(r.raw),
      }));
      return void (await writeOutput(io, JSON.stringify(out) + '\n'));
    }
    const lines = rows.map(
      (r) => `${r.id}\t${new Date(r.receivedAt).toISOString()}\t${oneLine(r.source)}\t${oneLine(r.code)}\t${oneLine(r.reason)}\t${preview(r.raw)}${r.rawTruncated ? ` [${r.rawBytes} bytes, truncated]` : ''}\n`,
    );
    await writeOutput(io, lines.join(''));
  },
};

const token: Command = {
  name: 'token',
  summary: "mint a bearer token for the PoD publisher's /v1/stream",
  usage: `mailbag pod token --cid CID [--expires 30d] [--config FILE]

Prints an HS256 JWT for the publisher (pod.publisher) signed with its secret
(pod.publisher.secretFile, created on first use). CID must be pod.publisher.cid.
One session per token: mint one per simultaneous connection. --expires takes a
duration (30d, 12h, 90m; default 30d).`,
  async run(argv, io) {
    const { values, positionals } = parseCommandArgs(argv, { ...CONFIG, cid: { type: 'string' }, expires: { type: 'string' } });
    if (positionals.length) throw new UsageError(`unexpected argument '${positionals[0]}'`);
    if (!values.cid) throw new UsageError('--cid is required');
    const expiresMs = values.expires === undefined ? 30 * 86_400_000 : parseDuration(values.expires);
    if (expiresMs === undefined || expiresMs < 1000) throw new UsageError(`--expires must be a duration of at least 1s (e.g. 30d, 12h), not ${JSON.stringify(values.expires)}`);
    const config = loadConfig(resolveConfigPath(values.config, io.env));
    const pub = config.pod.publisher;
    if (values.cid !== pub.cid) throw new CliError(`this publisher serves cid ${JSON.stringify(pub.cid)} (pod.publisher.cid), not ${JSON.stringify(values.cid)}`, 'ERR_POD_CID');
    let secret: Buffer;
    try {
      secret = loadOrCreateSecret(pub.secretFile, () =>
        // A running gateway has made its secret already: a new one means another file than its
        // (a relative secretFile from another directory, another config), and a token it refuses.
        io.stderr.write(
          `mailbag pod token: warning: created a new secret in ${pub.secretFile}: the token works with a gateway started with this file; one already running with another secret answers 401\n`,
        ),
      );
    } catch (err) {
      if (err instanceof PodSecretError) throw new CliError(err.message, err.code);
      throw err;
    }
    await writeOutput(io, signToken(secret, { cid: values.cid, expiresInSec: Math.floor(expiresMs / 1000) }) + '\n');
  },
};

const status: Command = {
  name: 'status',
  summary: 'per PoD stream: state, newest event and its age, counters, last error',
  usage: `mailbag pod status [--json] [--config FILE]

For each stream in pod.streams (and any the store still remembers): its state (connecting,
live, backfilling, backoff, conflict, stopped), since when and why, the newest event's ts and
age, events received/stored/duplicates/dead-lettered since the gateway started, and the last
error. The gateway records this in the store; the command reads it.`,
  async run(argv, io) {
    const { values, positionals } = parseCommandArgs(argv, { ...CONFIG, json: { type: 'boolean' } });
    if (positionals.length) throw new UsageError(`unexpected argument '${positionals[0]}'`);
    const config = loadConfig(resolveConfigPath(values.config, io.env));
    const store = openStoreForCli(config.store.path, { create: true });
    let rows;
    try {
      rows = store.podStreams.statuses();
    } finally {
      store.close();
    }
    const views = streamStatusViews(config.pod.streams, rows, Date.now());
    await writeOutput(io, values.json ? JSON.stringify(views) + '\n' : formatStreamStatus(views));
  },
};

function timeOption(name: string, value: string | undefined): number {
  if (value === undefined) throw new UsageError(`--${name} is required`);
  try {
    return Math.floor(parsePodTime(value).epochUs / 1000);
  } catch (err) {
    if (err instanceof PodError) throw new UsageError(`--${name}: ${err.message} (e.g. 2026-11-17T13:00:00-0500)`);
    throw err;
  }
}

const backfill: Command = {
  name: 'backfill',
  summary: "fetch a time range of a PoD stream from the service's archive",
  usage: `mailbag pod backfill --stream NAME --since TIME --until TIME [--json] [--config FILE]

TIME is ISO 8601 with an offset (2026-11-17T13:00:00-0500 or ...Z). The range is widened to
whole hours (since down, until up) and starts no earlier than 30 days ago, as the archive
keeps; its start, rounded down, must be over an hour old (the service answers a younger
sinceTime with a live session: the live stream covers the last hour). Uses the stream's backfillToken when configured, else its token (then the gateway must
not be consuming the stream at the same time: the service allows one session per token).
Events are stored like the stream's; a progress bar shows on a terminal. Prints: read N,
stored N, duplicates N, dead-lettered N (--json: the same four numbers as an object).`,
  async run(argv, io) {
    const { values, positionals } = parseCommandArgs(argv, {
      ...CONFIG,
      json: { type: 'boolean' },
      stream: { type: 'string' },
      since: { type: 'string' },
      until: { type: 'string' },
    });
    if (positionals.length) throw new UsageError(`unexpected argument '${positionals[0]}'`);
    if (values.stream === undefined) throw new UsageError('--stream is required');
    const sinceMs = timeOption('since', values.since);
    const untilMs = timeOption('until', values.until);
    if (untilMs <= sinceMs) throw new UsageError('--until must be later than --since');
    const config = loadConfig(resolveConfigPath(values.config, io.env));
    const stream = config.pod.streams.find((s) => s.name === values.stream);
    if (!stream) throw new CliError(`no stream '${values.stream}' in pod.streams (${config.pod.streams.map((s) => s.name).join(', ') || 'none configured'})`);
    const extra = resolveToken(stream.backfillToken, stream.backfillTokenEnv, io.env);
    const main = resolveToken(stream.token, stream.tokenEnv, io.env);
    const token = extra.token ?? main.token;
    if (token === undefined) throw new CliError(`stream ${stream.name}: no token (${extra.problem ?? main.problem ?? 'none configured'})`);
    const now = Date.now();
    const window = archiveWindow(sinceMs, untilMs, now);
    if (!window) throw new CliError("the range is past the archive's 30-day limit: nothing can be fetched");
    // The service takes a sinceTime "only if ... older than at least one hour": a younger one
    // opens a live session, which never ends, so the command would wait for ever.
    if (window.sinceMs > now - HOUR_MS) {
      throw new CliError(`the range starts at ${window.sinceTime} (rounded down), within the last hour, which the archive does not serve; the live stream covers the last hour`);
    }
    if (window.clippedFromMs !== undefined) {
      io.stderr.write(`note: events before ${window.sinceTime} are past the archive's 30-day limit and cannot be fetched\n`);
    }
    const s = await withCliStore(values.config, io, (store) => backfillWindow(stream, config.pod, token, window, store.pod, io));
    const line = values.json
      ? JSON.stringify({ read: s.read, stored: s.stored, duplicates: s.duplicates, deadLettered: s.deadLettered })
      : `read ${s.read}, stored ${s.stored}, duplicates ${s.duplicates}, dead-lettered ${s.deadLettered}`;
    await writeOutput(io, line + '\n');
  },
};

/** `mailbag pod ...`: Proofpoint on Demand log events in the store. */
export const podCommand: Command = {
  name: 'pod',
  summary: 'Proofpoint on Demand log events: import files, backfill from the archive, stream status, dead letters, publisher tokens',
  usage: 'mailbag pod <command> [options]',
  subcommands: [importCmd, deadLetters, backfill, status, token],
};
