// The publisher's store event source on a live maillog stream: a message's to= lines never
// go out before its from= line, whatever the reads of facts and attempts see.
import t, { type Test } from 'tap';
import { join } from 'node:path';
import { FACTS_WAIT_MS, StoreEventSource } from '../src/gateway/pod-store-source.js';
import { factsOf } from '../src/gateway/pod-facts-recorder.js';
import { Store } from '../src/store/store.js';
import type { NewMessage } from '../src/store/queue-store.js';
import { tempDir } from './helpers/gateway.js';

const NOW = Date.parse('2026-03-10T12:00:00Z');
const IDENTITY = { agent: 'mx.test.invalid', cid: 'c', version: '0.0.0', localDomains: ['example.test'] };

function row(qid: string): NewMessage {
  return { qid, receivedAt: NOW - 1000, envelopeFrom: 'ann@sender.test', size: 10, spoolPath: `/nonexistent/${qid}`, spoolOffset: 0, sha256: '0', recipients: ['alice@example.test'] };
}

function factsJson(m: NewMessage): string {
  const u = { row: 0, qid: m.qid, spool_path: m.spoolPath, spool_offset: 0, size: m.size, received_at: m.receivedAt, envelope_from: m.envelopeFrom, client_address: '127.0.0.1', client_hostname: null, helo: 'h', rcpts: JSON.stringify(m.recipients) };
  return JSON.stringify(factsOf(u, undefined));
}

function deliver(store: Store, qid: string, endedAt: number): void {
  store.queue.recordAttempt(
    { qid, nexthop: 'local', startedAt: endedAt - 10, durationMs: 10, reply: '250 ok', outcome: 'delivered', recipients: [{ rcpt: 'alice@example.test', state: 'delivered', reply: '250 ok' }] },
    endedAt,
  );
}

function open(t: Test): { store: Store; clock: { ms: number }; source: StoreEventSource } {
  const { dir, cleanup } = tempDir('pod-source');
  const store = Store.open(join(dir, 's.db'));
  t.teardown(() => {
    store.close();
    cleanup();
  });
  const clock = { ms: NOW };
  return { store, clock, source: new StoreEventSource(store, IDENTITY, () => clock.ms) };
}

/** `from QID` / `to QID` for each line of a batch. */
function lines(batch: { events: { payload: string | Buffer }[] }): string[] {
  return batch.events.map((e) => {
    const ev = JSON.parse(String(e.payload)) as { data: string; sm: { qid: string } };
    return `${/: from=/.test(ev.data) ? 'from' : 'to'} ${ev.sm.qid}`;
  });
}

t.test('a batch whose facts stop at its limit holds the attempts of the messages after them', async (t) => {
  const { store, source } = open(t);
  for (const qid of ['Q1', 'Q2']) {
    const m = row(qid);
    store.queue.insertMessage({ ...m, podFacts: { recordedAt: NOW - 900, facts: factsJson(m) } });
  }
  // Q2 is delivered first: the first attempt belongs to the message after the batch's facts
  deliver(store, 'Q2', NOW - 600);
  deliver(store, 'Q1', NOW - 500);
  const sent: string[] = [];
  let cursor: string | undefined;
  for (let i = 0; i < 4; i++) {
    const batch = source.next('maillog', cursor, 1);
    sent.push(...lines(batch));
    cursor = batch.cursor;
  }
  t.same(sent, ['from Q1', 'from Q2', 'to Q2', 'to Q1'], 'each to= after its from=, attempts in their order');
});

t.test('an attempt of a message with no facts yet waits for them, a bounded time', async (t) => {
  const { store, clock, source } = open(t);
  const m = row('Q1');
  store.queue.insertMessage(m);
  deliver(store, 'Q1', NOW - 500);
  const held = source.next('maillog', undefined, 10);
  t.same(lines(held), [], 'nothing while the sweep may still record the facts');
  store.podPublisher.recordFacts('Q1', NOW, factsJson(m));
  const recorded = source.next('maillog', held.cursor, 10);
  t.same(lines(recorded), ['from Q1', 'to Q1'], 'from= then to= once they are recorded');

  const late = row('Q2');
  store.queue.insertMessage(late);
  deliver(store, 'Q2', NOW);
  const after = recorded.cursor;
  t.same(lines(source.next('maillog', after, 10)), []);
  clock.ms = NOW + FACTS_WAIT_MS;
  t.same(lines(source.next('maillog', after, 10)), ['to Q2'], 'facts that never come do not stall the stream');
});
