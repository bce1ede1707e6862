import { renameSync, rmSync, writeFileSync } from 'node:fs';
import { loadConfig, resolveConfigPath } from '../config/load.js';
import { CliError, parseCommandArgs, UsageError, writeOutput, type Command } from './command.js';
import { buildReport } from './report/build.js';
import { formatCsv, formatJson, formatTable } from './report/format.js';
import { formatHtml } from './report/html.js';
import { reportWindow } from './report/time.js';
import { openStoreForCli } from './store-access.js';

const FORMATS = ['table', 'json', 'csv'] as const;
type Format = (typeof FORMATS)[number];

/** Writes FILE whole or not at all (a reader never sees half a page). */
function writeFileAtomically(file: string, text: string): void {
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    writeFileSync(tmp, text);
    renameSync(tmp, file);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw new CliError(`cannot write ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, 'ERR_MAILBAG_REPORT_WRITE');
  }
}

export const reportCommand: Command = {
  name: 'report',
  summary: 'traffic, delivery latency, languages, PoD events and correlation over a time window',
  usage: `mailbag report [--since T] [--until T] [--by hour|day] [--format table|json|csv] [--html FILE] [--config FILE]

T is ISO 8601 (2026-11-30, 2026-11-30T08:00Z; UTC unless an offset is given), 'now', or a
span before now (30m, 24h, 7d, 2w). Default: the last 24 hours, by hour up to two days and
by day beyond. --format json is a stable interface for scripts; csv has one row per bucket.
--html FILE writes a self-contained page with charts (no network needed to view it); stdout
then gets the --format output only if --format is given. Reads the store only (the gateway
may be running).`,
  async run(argv, io) {
    const { values, positionals } = parseCommandArgs(argv, {
      config: { type: 'string', short: 'c' },
      since: { type: 'string' },
      until: { type: 'string' },
      by: { type: 'string' },
      format: { type: 'string' },
      html: { type: 'string' },
    });
    if (positionals.length) throw new UsageError(`unexpected argument '${positionals[0]}'`);
    if (values.format !== undefined && !FORMATS.includes(values.format as Format)) {
      throw new UsageError(`--format must be table, json or csv, not '${values.format}'`);
    }
    if (values.html === '') throw new UsageError('--html needs a file name');
    const spec = reportWindow(values, Date.now());
    const config = loadConfig(resolveConfigPath(values.config, io.env));
    const store = openStoreForCli(config.store.path, { create: false });
    let report;
    try {
      report = buildReport(store, spec);
    } finally {
      store.close();
    }
    if (values.html !== undefined) {
      writeFileAtomically(values.html, formatHtml(report));
      io.stderr.write(`report written to ${values.html}\n`);
      if (values.format === undefined) return;
    }
    const format = (values.format as Format | undefined) ?? 'table';
    await writeOutput(io, format === 'json' ? formatJson(report) : format === 'csv' ? formatCsv(report) : formatTable(report));
  },
};
