import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { WriteStream } from 'node:tty';
import cliProgress from 'cli-progress';
import { DEFAULT_MAX_EVENT_BYTES, deadLetterRow, ingestToBatchItem } from '../../pod/ingest.js';
import type { PodBatchItem, PodStore } from '../../store/pod-store.js';
import { CliError, type CliIO } from '../command.js';
import { PayloadFileError, readPayloads } from './payloads.js';

/** The four numbers `mailbag pod import` reports (and `--json` prints, in this order). */
export interface ImportSummary {
  read: number;
  stored: number;
  duplicates: number;
  deadLettered: number;
}

export interface ImportOptions {
  maxEventBytes?: number;
  maxArrayBytes?: number;
  /** Events per store transaction. */
  batchSize?: number;
}

export const DEFAULT_MAX_ARRAY_BYTES = 256 * 1024 * 1024;
const DEFAULT_BATCH = 500;

/** The import's source tag on stored events; dead letters also name file and position. */
const SOURCE = 'import';

function sourceName(file: string): string {
  return file === '-' ? 'stdin' : file;
}

async function totalBytes(files: readonly string[]): Promise<number | undefined> {
  let total = 0;
  for (const f of files) {
    if (f === '-') return undefined;
    total += (await stat(f)).size;
  }
  return total;
}

/** Fails before anything is stored when a named file cannot be read. */
async function checkReadable(files: readonly string[]): Promise<void> {
  for (const f of files) {
    if (f === '-') continue;
    try {
      const s = await stat(f);
      if (!s.isFile()) throw new CliError(`cannot read ${f}: not a file`);
    } catch (err) {
      if (err instanceof CliError) throw err;
      throw new CliError(`cannot read ${f}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  }
}

function progressBar(io: CliIO, total: number | undefined): cliProgress.SingleBar | undefined {
  if (total === undefined || !(io.stderr as WriteStream).isTTY) return undefined;
  const bar = new cliProgress.SingleBar(
    { stream: io.stderr, format: 'importing [{bar}] {percentage}% | {value}/{total} bytes | {events} events', hideCursor: true },
    cliProgress.Presets.shades_classic,
  );
  bar.start(total, 0, { events: 0 });
  return bar;
}

/**
 * Ingests files of PoD events (JSON lines, a JSON array or pretty-printed JSON; `-` is stdin) as the
 * stream consumer ingests WebSocket messages: each payload is validated and normalised, or
 * dead-lettered with its reason, and stored in batches where replays count as duplicates.
 */
export async function importFiles(files: readonly string[], store: PodStore, io: CliIO, opts: ImportOptions = {}): Promise<ImportSummary> {
  await checkReadable(files);
  const maxEventBytes = opts.maxEventBytes ?? DEFAULT_MAX_EVENT_BYTES;
  const summary: ImportSummary = { read: 0, stored: 0, duplicates: 0, deadLettered: 0 };
  const bar = progressBar(io, await totalBytes(files));
  let done = 0;
  let batch: PodBatchItem[] = [];
  const flush = () => {
    if (!batch.length) return;
    const r = store.storeBatch(batch, { source: SOURCE });
    summary.stored += r.stored;
    summary.duplicates += r.duplicates;
    summary.deadLettered += r.deadLettered;
    batch = [];
  };
  try {
    for (const file of files) {
      const input = file === '-' ? io.stdin : createReadStream(file);
      const payloads = readPayloads(input as AsyncIterable<Buffer>, {
        maxEventBytes,
        maxArrayBytes: opts.maxArrayBytes ?? DEFAULT_MAX_ARRAY_BYTES,
        onBytes: (n) => bar?.update((done += n), { events: summary.read }),
      });
      try {
        for await (const p of payloads) {
          summary.read++;
          const source = `${SOURCE} ${sourceName(file)}:${p.position}`;
          batch.push(
            p.oversize
              ? deadLetterRow(p.payload, 'ERR_POD_TOO_LARGE', `event of ${p.totalBytes} bytes is over the ${maxEventBytes}-byte limit`, source, {
                  bytes: p.totalBytes,
                  sha256: p.oversize.sha256,
                })
              : ingestToBatchItem(p.payload, source, { maxEventBytes }),
          );
          if (batch.length >= (opts.batchSize ?? DEFAULT_BATCH)) flush();
        }
      } catch (err) {
        if (err instanceof PayloadFileError) throw new CliError(`${sourceName(file)}: ${err.message}`, err.code);
        const code = (err as NodeJS.ErrnoException).code;
        if (code !== undefined && !(err instanceof CliError)) throw new CliError(`cannot read ${sourceName(file)}: ${code}`);
        throw err;
      }
    }
  } finally {
    // What was read before a failure is stored: importing again later only adds the rest.
    flush();
    bar?.update(done, { events: summary.read });
    bar?.stop();
  }
  return summary;
}
