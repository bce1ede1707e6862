import type { WriteStream } from 'node:tty';
import cliProgress from 'cli-progress';
import type { PodStreamConfig } from '../../config/schema.js';
import { refusalAction, streamUrl, type ArchiveWindow } from '../../pod/consumer.js';
import { ingestToBatchItem } from '../../pod/ingest.js';
import { runSession } from '../../gateway/pod-session.js';
import type { PodConfig } from '../../gateway/pod-consumer.js';
import type { PodBatchItem, PodStore } from '../../store/pod-store.js';
import { CliError, type CliIO } from '../command.js';
import type { ImportSummary } from './import.js';

function progressBar(io: CliIO, w: ArchiveWindow): cliProgress.SingleBar | undefined {
  if (!(io.stderr as WriteStream).isTTY) return undefined;
  const bar = new cliProgress.SingleBar(
    { stream: io.stderr, format: 'backfill [{bar}] {percentage}% | up to {upTo} | {events} events', hideCursor: true },
    cliProgress.Presets.shades_classic,
  );
  // Progress is how far into the window the newest event reached, in minutes.
  bar.start(Math.max(1, Math.round((w.untilMs - w.sinceMs) / 60_000)), 0, { upTo: w.sinceTime, events: 0 });
  return bar;
}

/**
 * One archive request by hand (`mailbag pod backfill`): the events of `window` are
 * ingested and stored like a stream's, without moving the stream's checkpoint (a window
 * filled out of order must not hide an older gap from the automatic fill).
 */
export async function backfillWindow(
  stream: PodStreamConfig,
  config: PodConfig,
  token: string,
  window: ArchiveWindow,
  store: PodStore,
  io: CliIO,
): Promise<ImportSummary> {
  const summary: ImportSummary = { read: 0, stored: 0, duplicates: 0, deadLettered: 0 };
  const bar = progressBar(io, window);
  let batch: PodBatchItem[] = [];
  let newestMs = window.sinceMs;
  const flush = () => {
    if (!batch.length) return;
    const r = store.storeBatch(batch, { source: stream.name });
    summary.stored += r.stored;
    summary.duplicates += r.duplicates;
    summary.deadLettered += r.deadLettered;
    batch = [];
  };
  let end;
  try {
    end = await runSession({
      url: streamUrl(stream.url, { cid: stream.cid, type: stream.type, sinceTime: window.sinceTime, toTime: window.toTime }),
      token,
      maxEventBytes: config.maxEventBytes,
      pingIntervalMs: config.pingInterval,
      connectTimeoutMs: config.connectTimeout,
      signal: new AbortController().signal,
      onPayload(p) {
        summary.read++;
        const item = ingestToBatchItem(p, stream.name, { kind: stream.type, maxEventBytes: config.maxEventBytes });
        if (item.kind !== 'dead') newestMs = Math.max(newestMs, Math.floor(item.row.tsUs / 1000));
        batch.push(item);
        if (batch.length >= config.batchSize) flush();
        bar?.update(Math.round((Math.min(newestMs, window.untilMs) - window.sinceMs) / 60_000), { upTo: new Date(newestMs).toISOString(), events: summary.read });
      },
    });
  } finally {
    flush();
    bar?.stop();
  }
  if (end.kind === 'closed' && end.code === 1000) return summary;
  const so = `${summary.read} events read, ${summary.stored} stored`;
  if (end.kind === 'refused') {
    const { action, why } = refusalAction(end.status);
    const advice =
      action === 'conflict'
        ? ': the gateway may be consuming this stream with the same token; configure backfillToken (or backfillTokenEnv) for the stream, or stop the gateway'
        : '';
    throw new CliError(`archive request refused: ${why}${advice}`, `ERR_POD_HTTP_${end.status}`);
  }
  const how = end.kind === 'closed' ? `the server closed the session (${end.code}${end.reason ? ` ${end.reason}` : ''})` : end.kind === 'failed' ? end.message : 'aborted';
  throw new CliError(`the archive session ended before its range was done: ${how}; ${so}; run it again (events already stored are not stored twice)`, 'ERR_POD_ARCHIVE_INCOMPLETE');
}
