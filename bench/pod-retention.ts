// What the PoD part of the retention pass costs: how long one batch (one IMMEDIATE
// transaction) holds the write lock, and rows pruned per second, beside a bare batched
// DELETE by rowid of the same number of rows from a plain table of the same shape without
// triggers or links, in the same run, and how long storing a batch of 500 events (the
// consumer's own transaction) holds it. The store: 6,000 upstream messages (one message event
// with two triggered rules, a from= line and a hand-over line each, all linked to a mailbag
// message by queued-as and received), 18,000 events; the older two thirds are pruned.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { POD_PRUNE_BATCH } from '../src/delivery/retention.js';
import { ingestToBatchItem } from '../src/pod/ingest.js';
import { Store } from '../src/store/store.js';
import { fromLine, maillogEvent, messageEvent, sentToMailbagLine } from '../test/helpers/report-pod-events.js';

const UPSTREAMS = 6000;
const BATCH = POD_PRUNE_BATCH;
/** The consumer's default `pod.batchSize`. */
const STORE_BATCH = 500;
const DAY = 86_400_000;
const NOW = Date.UTC(2026, 10, 30);

const ms = (ns: bigint) => Number(ns) / 1e6;
const pct = (list: number[], p: number) => [...list].sort((a, b) => a - b)[Math.min(list.length - 1, Math.ceil((p / 100) * list.length) - 1)]!;

const dir = mkdtempSync(join(tmpdir(), 'mailbag-bench-pod-retention-'));
try {
  const store = Store.open(join(dir, 'store.db'), { role: 'queue' });
  const items: string[] = [];
  for (let i = 0; i < UPSTREAMS; i++) {
    const at = NOW - 45 * DAY + Math.floor((i / UPSTREAMS) * 45 * DAY);
    const u = `4UB${String(i).padStart(8, '0')}`;
    const qid = `Q${String(i).padStart(12, '0')}`;
    store.queue.insertMessage({ qid, receivedAt: at, envelopeFrom: 's@up.example', size: 1, spoolPath: `/nonexistent/${qid}`, spoolOffset: 0, sha256: '0'.repeat(64), recipients: ['r@m.example'] });
    store.correlation.recordMessageKeys(
      { qid, receivedAt: at, keys: { messageId: `m${i}@up.example`, upstreamQid: u, upstreamHost: 'mx.up.example', proofpointGuid: undefined, proofpointOrigGuid: undefined }, envelopeFrom: 's@up.example', rcpts: ['r@m.example'], clientAddress: '192.0.2.1', size: 1 },
      at,
    );
    items.push(
      messageEvent({ guid: `g${i}`, at, upstreamQid: u, messageId: `m${i}@up.example`, disposition: 'continue', rules: [['spam', 'bulk'], ['dmarc', 'pass']] }),
      maillogEvent({ id: `f${i}`, at, upstreamQid: u, fields: fromLine('s@up.example', `m${i}@up.example`) }),
      maillogEvent({ id: `t${i}`, at: at + 1000, upstreamQid: u, fields: sentToMailbagLine('r@m.example', qid) }),
    );
  }
  const storeBatches: number[] = [];
  for (let i = 0; i < items.length; i += STORE_BATCH) {
    const batch = items.slice(i, i + STORE_BATCH).map((p) => ingestToBatchItem(p, 'bench'));
    const b0 = process.hrtime.bigint();
    store.pod.storeBatch(batch, { source: 'bench' });
    storeBatches.push(ms(process.hrtime.bigint() - b0));
  }
  const links = (store.db.prepare('SELECT COUNT(*) AS n FROM upstream_links').get() as { n: number }).n;

  // baseline: the same number of rows, same columns, no triggers, no indexes but the rowid
  store.db.exec('CREATE TABLE bare AS SELECT * FROM pod_maillog_events WHERE 0');
  const copy = store.db.prepare('INSERT INTO bare SELECT * FROM pod_maillog_events');
  for (let k = 0; k < 2; k++) copy.run();

  const cutoff = NOW - 15 * DAY;
  const batches: number[] = [];
  let rows = 0;
  let removedLinks = 0;
  const t0 = process.hrtime.bigint();
  for (;;) {
    const b0 = process.hrtime.bigint();
    const r = store.prunePodBefore(cutoff, BATCH);
    batches.push(ms(process.hrtime.bigint() - b0));
    rows += r.rows;
    removedLinks += r.links;
    if (r.rows < BATCH) break;
  }
  const total = ms(process.hrtime.bigint() - t0);

  const bareRows = (store.db.prepare('SELECT COUNT(*) AS n FROM bare').get() as { n: number }).n;
  const bareIds = store.db.prepare('SELECT rowid AS id FROM bare ORDER BY rowid LIMIT ?');
  const bareDelete = store.db.prepare('DELETE FROM bare WHERE rowid = ?');
  const bareBatches: number[] = [];
  let bareDone = 0;
  const u0 = process.hrtime.bigint();
  while (bareDone < rows && bareDone < bareRows) {
    const b0 = process.hrtime.bigint();
    store.db.exec('BEGIN IMMEDIATE');
    for (const r of bareIds.all(Math.min(BATCH, rows - bareDone)) as { id: number }[]) bareDone += bareDelete.run(r.id).changes;
    store.db.exec('COMMIT');
    bareBatches.push(ms(process.hrtime.bigint() - b0));
  }
  const bareTotal = ms(process.hrtime.bigint() - u0);

  const rate = (rows / total) * 1000;
  const bareRate = (bareDone / bareTotal) * 1000;
  process.stdout.write(`store: ${items.length} PoD events of ${UPSTREAMS} upstream messages, ${links} links; pruned ${rows} events and ${removedLinks} links\n`);
  process.stdout.write(`prune, ${BATCH} rows per transaction   ${batches.length} batches, per batch p50 ${pct(batches, 50).toFixed(2)} ms, p99 ${pct(batches, 99).toFixed(2)} ms, max ${Math.max(...batches).toFixed(2)} ms; ${Math.round(rate)} rows/s\n`);
  process.stdout.write(`baseline: bare DELETE by rowid       ${bareBatches.length} batches, per batch p50 ${pct(bareBatches, 50).toFixed(2)} ms, max ${Math.max(...bareBatches).toFixed(2)} ms; ${Math.round(bareRate)} rows/s\n`);
  process.stdout.write(`for scale: storing ${STORE_BATCH} events  ${storeBatches.length} batches, per batch p50 ${pct(storeBatches, 50).toFixed(2)} ms, max ${Math.max(...storeBatches).toFixed(2)} ms (the consumer's own transaction)\n`);
  process.stdout.write(`ratio: prune / bare = ${(rate / bareRate).toFixed(3)}\n`);
  store.close();
} finally {
  rmSync(dir, { recursive: true, force: true });
}
