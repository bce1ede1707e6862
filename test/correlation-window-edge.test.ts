// The Message-ID fallback's window at its edge, to the microsecond: a PoD event's time has
// µs, a message's receipt ms. Whichever side is stored first, the same pair links or not, and
// pruning an unrelated event of the upstream qid keeps what linking made.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { extractCorrelationKeys } from '../src/store/correlation-keys.js';
import { MESSAGE_ID_WINDOW_MS } from '../src/store/correlation-store.js';
import { Store } from '../src/store/store.js';
import { batch, messageEvent } from './helpers/pod-events.js';

const dir = mkdtempSync(join(tmpdir(), 'mailbag-correlation-edge-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;

const T0 = Date.parse('2026-11-30T09:12:00Z');
const QID = '0MBQ7ZK2T4H1A';
const UPSTREAM = '4AUGx1Zq012345';

/** A message event with the Message-ID, at `ms` plus `us` microseconds. */
function eventAt(ms: number, us: number): string {
  const e = JSON.parse(messageEvent({ guid: `g${n}`, qid: UPSTREAM, at: ms, messageId: '<edge@sender.test>' })) as { ts: string };
  e.ts = e.ts.replace(/\.(\d{3})000-0700$/, (_, m: string) => `.${m}${String(us).padStart(3, '0')}-0700`);
  return JSON.stringify(e);
}

function links(store: Store): string[] {
  return (store.db.prepare('SELECT upstream_qid, qid, via FROM upstream_links ORDER BY 1, 2, 3').all() as { upstream_qid: string; qid: string; via: string }[]).map((r) => `${r.upstream_qid}>${r.qid}:${r.via}`);
}

function both(eventMs: number, us: number): { eventFirst: string[]; messageFirst: string[] } {
  const out: string[][] = [];
  for (const eventFirst of [true, false]) {
    const store = Store.open(join(dir, `s${n++}.db`));
    const storeEvent = () => store.pod.storeBatch(batch([eventAt(eventMs, us)]), { source: 'test' });
    const storeMessage = () =>
      store.correlation.recordMessageKeys({ qid: QID, receivedAt: T0, keys: extractCorrelationKeys('Message-ID: <edge@sender.test>\r\n\r\n'), envelopeFrom: 'a@sender.test', rcpts: ['b@example.test'], clientAddress: null, size: 10 });
    if (eventFirst) {
      storeEvent();
      storeMessage();
    } else {
      storeMessage();
      storeEvent();
    }
    out.push(links(store));
    store.close();
  }
  return { eventFirst: out[0]!, messageFirst: out[1]! };
}

t.test('an event just past the window after the message links in neither order', async (t) => {
  const r = both(T0 + MESSAGE_ID_WINDOW_MS, 500);
  t.same(r.eventFirst, [], 'event stored first');
  t.same(r.messageFirst, [], 'message stored first');
});

t.test('an event just past the window before the message links in neither order', async (t) => {
  const r = both(T0 - MESSAGE_ID_WINDOW_MS - 1, 500);
  t.same(r.eventFirst, []);
  t.same(r.messageFirst, []);
});

t.test('an event at the window edges links in both orders', async (t) => {
  for (const [ms, us] of [
    [T0 + MESSAGE_ID_WINDOW_MS, 0],
    [T0 - MESSAGE_ID_WINDOW_MS, 0],
    [T0 + MESSAGE_ID_WINDOW_MS - 1, 999],
  ] as const) {
    const r = both(ms, us);
    t.same(r.eventFirst, [`${UPSTREAM}>${QID}:message-id`], `${ms - T0} ms + ${us} µs, event first`);
    t.same(r.messageFirst, [`${UPSTREAM}>${QID}:message-id`], `${ms - T0} ms + ${us} µs, message first`);
  }
});
