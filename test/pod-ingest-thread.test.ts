// The ingest thread: every payload's batch item comes back in the order it went in, the same
// item the main thread would make; a thread that dies hands what it held back to the main thread;
// `pod.ingestThread: false` keeps ingest on the consumer's main thread.
import type { Worker } from 'node:worker_threads';
import { pino } from 'pino';
import t from 'tap';
import { PodIngestThread, type IngestStreamOptions } from '../src/gateway/pod-ingest-thread.js';
import { ingestToBatchItem } from '../src/pod/ingest.js';
import type { PodBatchItem } from '../src/store/pod-store.js';
import { corpusEvents } from './helpers/pod-corpus.js';
import { messageEvent, startConsumer, storedGuids, tempStore, TestClock, until } from './helpers/pod-consumer.js';
import { startPublisherDouble } from './helpers/pod-publisher-double.js';

const corpus = corpusEvents();
const message: IngestStreamOptions = { kind: 'message', maxEventBytes: 64 * 1024, source: 'msg' };
const maillog: IngestStreamOptions = { kind: 'maillog', maxEventBytes: 64 * 1024, source: 'mail' };
const optsOf = (source: string) => (source.startsWith('elastic-test-mail') ? maillog : message);

/** Every corpus event, a bad payload, an oversize one, and the events again, interleaving the two streams' options. */
function inputs(): Array<{ payload: Buffer; opts: IngestStreamOptions }> {
  const good = corpus.map((c) => ({ payload: Buffer.from(c.payload), opts: optsOf(c.source) }));
  const bad = [
    { payload: Buffer.from('{"guid": "broken",'), opts: message },
    { payload: Buffer.from(`{"data":"${'x'.repeat(70 * 1024)}"}`), opts: maillog },
    { payload: Buffer.from([0xff, 0xfe, 0x7b]), opts: message },
  ];
  return [...good, ...bad, ...good];
}

const expected = (list: ReturnType<typeof inputs>) => list.map((i) => ingestToBatchItem(i.payload, i.opts.source, i.opts));

function collect(thread: PodIngestThread, list: ReturnType<typeof inputs>): PodBatchItem[] {
  const out: PodBatchItem[] = [];
  for (const i of list) thread.ingest(i.payload, i.opts, (item) => out.push(item));
  return out;
}

t.test('items come back in order, as the main thread makes them, dead letters with Buffer bytes', async (t) => {
  const thread = new PodIngestThread(pino({ level: 'silent' }));
  t.teardown(() => thread.close());
  const list = inputs();
  const out = collect(thread, list);
  t.ok(thread.inFlight > 0, 'answered later, not in the call');
  await thread.drained();
  t.equal(thread.inFlight, 0);
  t.same(out, expected(list));
  const dead = out.filter((i) => i.kind === 'dead');
  t.equal(dead.length, 3, 'the three bad payloads');
  t.ok(dead.every((d) => Buffer.isBuffer(d.row.raw)), 'raw bytes as a Buffer (the store binds Buffers)');
});

t.test('a thread that dies: what it held and what follows is ingested on the main thread, in order', async (t) => {
  const logs: string[] = [];
  const logger = pino({ level: 'error' }, { write: (line: string) => logs.push(line) });
  const thread = new PodIngestThread(logger);
  t.teardown(() => thread.close());
  const list = inputs();
  const out = collect(thread, list.slice(0, 10));
  // Once the first ten are on their way to the thread, it is killed before it answers.
  await new Promise((r) => setImmediate(r));
  t.equal(thread.inFlight, 10, 'none answered yet');
  await (thread as unknown as { worker: Worker }).worker.terminate();
  await thread.drained();
  for (const i of list.slice(10)) thread.ingest(i.payload, i.opts, (item) => out.push(item));
  t.same(out, expected(list), 'every payload once, in order');
  t.match(logs.join(''), /ingest thread failed/);
});

t.test('a thread alive but silent: given up once its oldest payloads go unanswered, everything ingested on the main thread, in order', async (t) => {
  const logs: string[] = [];
  const logger = pino({ level: 'error' }, { write: (line: string) => logs.push(line) });
  const thread = new PodIngestThread(logger, { answerTimeoutMs: 50 });
  t.teardown(() => thread.close());
  const list = inputs();
  // every post is swallowed, as by a thread stuck in a loop: the thread itself stays alive
  const worker = (thread as unknown as { worker: Worker }).worker;
  let posts = 0;
  worker.postMessage = () => {
    posts++;
  };
  const out = collect(thread, list.slice(0, 10));
  await thread.drained();
  t.ok(posts >= 1, 'the payloads were posted');
  for (const i of list.slice(10)) thread.ingest(i.payload, i.opts, (item) => out.push(item));
  t.same(out, expected(list), 'every payload once, in order');
  t.match(logs.join(''), /no answer for 50 ms/);
  t.match(logs.join(''), /ingest thread failed/);
});

t.test('a healthy thread is never given up: no watchdog while nothing is out, a fresh one from each answer', async (t) => {
  const logs: string[] = [];
  const logger = pino({ level: 'error' }, { write: (line: string) => logs.push(line) });
  const thread = new PodIngestThread(logger);
  t.teardown(() => thread.close());
  const inner = thread as unknown as { watchdog: NodeJS.Timeout | undefined; answerTimeoutMs: number; worker: Worker | undefined };
  const list = inputs();
  // warmed up with the default timeout (the thread's start-up is not what is timed here)
  const out = collect(thread, list.slice(0, 3));
  await thread.drained();
  t.equal(inner.watchdog, undefined, 'nothing out: no watchdog armed');
  inner.answerTimeoutMs = 100;
  for (let round = 0; round < 4; round++) {
    for (const i of list.slice(3 + round * 3, 6 + round * 3)) thread.ingest(i.payload, i.opts, (item) => out.push(item));
    await thread.drained();
    t.equal(inner.watchdog, undefined, `round ${round + 1}: answered, no watchdog left armed`);
    // idle for longer than the timeout
    await new Promise((r) => setTimeout(r, 150));
  }
  t.ok(inner.worker, 'still on its own thread');
  t.same(out, expected(list.slice(0, 15)));
  t.notMatch(logs.join(''), /ingest thread failed/);
});

t.test('a consumer with ingestThread: false ingests on its main thread and stores the same', async (t) => {
  const clock = new TestClock(Date.parse('2026-11-30T10:05:00Z'));
  const double = await startPublisherDouble(clock.now);
  const tmp = tempStore();
  const h = startConsumer(tmp.path, { ingestThread: false, streams: [{ name: 'pod-msg', url: double.url, cid: 'cid1', type: 'message', token: double.token() }] }, clock);
  t.teardown(async () => {
    await h.stop();
    await double.close();
    tmp.cleanup();
  });
  await until(() => double.open('live').length === 1, 'a live session');
  t.equal((h.consumer as unknown as { ingestThread?: PodIngestThread }).ingestThread, undefined, 'no ingest thread');
  for (const g of ['a', 'b', 'c']) double.publish('message', clock.ms, messageEvent(g, clock.ms));
  double.publish('message', clock.ms, '{"guid": "broken",');
  await until(() => storedGuids(h.store).length === 3 && h.consumer.statuses()[0]!.deadLettered === 1, 'three stored, one dead-lettered');
  t.same(storedGuids(h.store), ['a', 'b', 'c']);
});
