// What recording a message's correlation keys costs, per message: on the queue thread with
// its first attempt round (the keys extracted from the header section the spool check read,
// recorded in the round's own transaction with the links to upstream events), beside the
// extraction alone (what parsing in the SMTP accept path would have cost), the keys in a
// transaction of their own, the round's transaction without keys, and a bare one-row
// insert transaction of the same store in the same run. 2,000 spooled 20 KB messages with a
// 3 KB header section; the store holds 20,000 PoD events so the link lookups hit indexes
// of a realistic shape.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { toNewMessage } from '../src/delivery/accept.js';
import { correlationKeysFor } from '../src/delivery/correlation.js';
import { readHeaderSection } from '../src/delivery/enqueue.js';
import { Spool } from '../src/delivery/spool.js';
import { ingestToBatchItem } from '../src/pod/ingest.js';
import { extractCorrelationKeys } from '../src/store/correlation-keys.js';
import type { MessageRow, RecipientRow, RoundToRecord } from '../src/store/queue-store.js';
import { Store } from '../src/store/store.js';
import { maillogPair, messageEvent } from '../test/helpers/pod-events.js';

const N = 2000;
const dir = mkdtempSync(join(tmpdir(), 'mailbag-bench-keys-'));
try {
  const store = Store.open(join(dir, 'store.db'), { role: 'queue' });
  const spool = new Spool(join(dir, 'spool'));
  const logger = pino({ level: 'silent' });
  const T0 = Date.now();
  const items: string[] = [];
  for (let i = 0; i < 5000; i++) {
    const u = `4AUG${String(i).padStart(10, '0')}`;
    items.push(messageEvent({ guid: `g${i}`, qid: u, at: T0 - 10_000 + i, messageId: `<m${i}@sender.test>` }), ...maillogPair({ idPrefix: `e${i}`, qid: u, at: T0 - 10_000 + i, queuedAs: `0Q${String(i).padStart(11, '0')}` }));
  }
  for (let i = 0; i < items.length; i += 500) store.pod.storeBatch(items.slice(i, i + 500).map((p) => ingestToBatchItem(p, 'bench')), { source: 'bench' });

  const header = (i: number) =>
    [
      `Received: from mx0a.pphosted.com (mx0a.pphosted.com [198.51.100.2]) by gw.example.test (mailbag) with ESMTP id 0Q${String(i).padStart(11, '0')}; Mon, 30 Nov 2026 09:12:03 +0000`,
      `Received: from mail.sender.test (mail.sender.test [192.0.2.10])\r\n\tby mx0a-00123.pphosted.com (8.18.1.2/8.18.1.2) with ESMTPS id 4AUG${String(i).padStart(10, '0')}\r\n\tfor <bob@example.test>; Mon, 30 Nov 2026 02:12:01 -0700`,
      ...Array.from({ length: 12 }, (_, k) => `X-Filler-${k}: ${'v'.repeat(180)}`),
      `X-Proofpoint-GUID: g${i}`,
      `Message-ID: <m${i}@Sender.test>`,
      'Subject: figures',
      '',
      '',
    ].join('\r\n');
  const body = 'x'.repeat(76) + '\r\n';
  const rows: MessageRow[] = [];
  for (let i = 0; i < N; i++) {
    const qid = `0Q${String(i).padStart(11, '0')}`;
    const envelope = { qid, receivedAt: T0, sender: 'alice@sender.test', recipients: [{ address: 'bob@example.test' }] };
    const w = await spool.create(envelope);
    const bytes = Buffer.concat([Buffer.from(header(i)), Buffer.from(body.repeat(220))]);
    await new Promise<void>((r) => w.end(bytes, () => r()));
    const spoolPath = await w.commit();
    store.queue.insertMessage(toNewMessage(envelope, { spoolPath, spoolOffset: w.offset, size: w.bytes, sha256: w.sha256! }));
    rows.push(store.queue.message(qid)!);
  }

  const time = async (fn: (i: number) => unknown | Promise<unknown>) => {
    const start = process.hrtime.bigint();
    for (let i = 0; i < N; i++) await fn(i);
    return Number(process.hrtime.bigint() - start) / 1000 / N;
  };
  const headers = await Promise.all(rows.slice(0, 200).map((r) => readHeaderSection(spool, r)));
  const extract = await time((i) => extractCorrelationKeys(headers[i % headers.length]!));
  const read = await time((i) => readHeaderSection(spool, rows[i]!));
  store.db.exec('CREATE TABLE bench_bare (qid TEXT PRIMARY KEY, a TEXT, b TEXT, c TEXT, d INTEGER)');
  const bare = store.db.prepare('INSERT INTO bench_bare VALUES (?, ?, ?, ?, ?)');
  const insert = await time((i) => store.db.transaction(() => bare.run(`q${i}`, 'm', 'u', 'g', i)).immediate());
  // half the messages: the transaction alone (keys extracted beforehand); the other half: the whole first claim
  const half = N / 2;
  const keys = await Promise.all(rows.slice(0, half).map(async (r) => extractCorrelationKeys(await readHeaderSection(spool, r))));
  const timeHalf = async (fn: (i: number) => unknown | Promise<unknown>) => {
    const start = process.hrtime.bigint();
    for (let i = 0; i < half; i++) await fn(i);
    return Number(process.hrtime.bigint() - start) / 1000 / half;
  };
  const tx = await timeHalf((i) =>
    store.correlation.recordMessageKeys({ qid: rows[i]!.qid, receivedAt: T0, keys: keys[i]!, envelopeFrom: 'alice@sender.test', rcpts: ['bob@example.test'], clientAddress: null, size: 1 }),
  );
  // the other half: each message's first round recorded, with its keys (as the queue does) and, for a
  // quarter, without (what the round's transaction costs alone)
  const verified = await Promise.all(rows.slice(half).map((r) => spool.openVerified(r)));
  const claimed = (qid: string) => store.queue.recipients(qid);
  const round = (m: MessageRow, withKeys: RecipientRow[] | undefined, k: number): RoundToRecord => ({
    qid: m.qid,
    attempts: [{ qid: m.qid, nexthop: 'smtp://sink', startedAt: T0, durationMs: 1, reply: '250 ok', outcome: 'delivered', recipients: [{ rcpt: 'bob@example.test', state: 'delivered', reply: '250 ok' }] }],
    leased: ['bob@example.test'],
    keys: withKeys ? correlationKeysFor({ store, logger }, m, withKeys, verified[k]!.headerSection) : undefined,
  });
  // interleaved (even: no keys, odd: keys), so WAL checkpoints fall on both alike
  const quarter = half / 2;
  const timeEach = (withKeys: boolean) => {
    let ns = 0n;
    for (let i = 0; i < quarter; i++) {
      const k = 2 * i + (withKeys ? 1 : 0);
      const m = rows[half + k]!;
      const start = process.hrtime.bigint();
      store.queue.recordRounds([round(m, withKeys ? claimed(m.qid) : undefined, k)]);
      ns += process.hrtime.bigint() - start;
    }
    return Number(ns) / 1000 / quarter;
  };
  let roundOnly = 0;
  let record = 0;
  for (const withKeys of [false, true]) {
    if (withKeys) record = timeEach(true);
    else roundOnly = timeEach(false);
  }
  const later = rows.map((r) => claimed(r.qid).map((c) => ({ ...c, attempts: 1 })));
  const again = await time((i) => correlationKeysFor({ store, logger }, rows[i]!, later[i]!, Buffer.alloc(0)));
  const linked = (store.db.prepare('SELECT COUNT(DISTINCT qid) AS n FROM upstream_links').get() as { n: number }).n;
  const f = (us: number) => `${us.toFixed(1).padStart(7)} µs`;
  console.log(`${N} messages, ${items.length} PoD events stored; ${linked} messages linked`);
  console.log(`  extract keys from a header in memory    ${f(extract)}   (what the accept path would parse)`);
  console.log(`  read the spooled header section          ${f(read)}`);
  console.log(`  the keys' transaction, links included      ${f(tx)}`);
  console.log(`  a first round's transaction, no keys      ${f(roundOnly)}`);
  console.log(`  the same with extract + keys in it       ${f(record)}   (queue thread; no read of its own)`);
  console.log(`  later rounds: keys already recorded      ${f(again)}`);
  console.log(`  baseline: bare one-row IMMEDIATE insert  ${f(insert)}`);
  store.close();
} finally {
  rmSync(dir, { recursive: true, force: true });
}
