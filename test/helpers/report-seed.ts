// A small store with known figures for `mailbag report` tests: every number the report
// should print for the day 2026-11-29 (UTC) is listed in EXPECTED, worked out by hand.
import type { KeyKind } from '../../src/cli/trace/collect.js';
import type { LanguageChoice } from '../../src/store/multilingual-store.js';
import { ingestToBatchItem } from '../../src/pod/ingest.js';
import type { AttemptRecord } from '../../src/store/queue-store.js';
import type { Store } from '../../src/store/store.js';
import { fromLine, maillogEvent, messageEvent, sentToMailbagLine } from './report-pod-events.js';

export const DAY = Date.UTC(2026, 10, 29);
const H = 3_600_000;
const SMTP = 'smtp://hop1.example:25';
const MAILDIR = 'maildir:/var/mail';

function message(store: Store, qid: string, receivedAt: number, recipients: string[]): void {
  store.queue.insertMessage({ qid, receivedAt, envelopeFrom: 'sender@upstream.example', size: 1000, spoolPath: `/nonexistent/${qid}`, spoolOffset: 0, sha256: '0'.repeat(64), recipients });
}

/** The keys the queue records at a message's first claim (src/delivery/correlation.ts). */
function keys(store: Store, qid: string, receivedAt: number, messageId: string, upstreamQid?: string): void {
  store.correlation.recordMessageKeys(
    { qid, receivedAt, keys: { messageId, upstreamQid, upstreamHost: upstreamQid ? 'mx.upstream.example' : undefined, proofpointGuid: undefined, proofpointOrigGuid: undefined }, envelopeFrom: 'sender@upstream.example', rcpts: [], clientAddress: '192.0.2.10', size: 1000 },
    receivedAt + 10,
  );
}

function attempt(store: Store, qid: string, nexthop: string, at: number, outcomes: [rcpt: string, state: 'delivered' | 'deferred' | 'failed'][]): void {
  const outcome: AttemptRecord['outcome'] = outcomes.every(([, s]) => s === outcomes[0]![1]) ? outcomes[0]![1] : 'partial';
  const reply = (s: string) => (s === 'delivered' ? '250 ok' : s === 'deferred' ? '451 try later' : '550 no such user');
  store.queue.recordRound(
    qid,
    [{ qid, nexthop, startedAt: at, durationMs: 100, reply: reply(outcome), outcome, recipients: outcomes.map(([rcpt, state]) => ({ rcpt, state, reply: reply(state), nextAttemptAt: at + H })) }],
    outcomes.map(([rcpt]) => rcpt),
    at,
  );
}

function choice(rcpt: string, mode: LanguageChoice['mode'], tags: string | null): LanguageChoice {
  return { rcpt, mode, partIndex: tags ? 1 : null, tags, translationType: null, rule: mode === 'select' ? 'exact' : 'none', why: 'test', preferences: 'de', fromMismatch: false, dkim: null };
}

/** One key of each kind that `seedReportStore` makes traceable (its first message and what links to it). */
export const SEEDED_TRACE_KEYS: Record<KeyKind, string> = { qid: 'QA00000000001', upstream: '4UPA001', 'message-id': 'a@up.example', guid: 'guid-a' };

/**
 * Messages (receipt in the day unless said):
 * - QA 01:00, a1 delivered at +2 s (smtp), a2 deferred at +1 s then delivered at 02:00 (1 h).
 * - QB 03:00, b1 bounced (550) at +1 s.
 * - QC 05:00, c1 c2 c3 delivered by maildir at +500 ms; languages: c1 de, c2 de, c3 unchanged.
 * - QD received the day before (23:00), delivered at 00:10: delivered in the day, not received.
 * - QE received the day after: in no figure of the day.
 * - QF 06:00, open; linked to its upstream message by Message-ID only.
 * - QG 03:00:02, the bounce of QB (mailbag made it: not in the coverage).
 * PoD: QA and QC were delivered to mailbag by the upstream (queued as), QB was not seen; one
 * more upstream message was handed to mailbag as a qid the store does not have.
 */
export function seedReportStore(store: Store): void {
  message(store, 'QA00000000001', DAY + 1 * H, ['a1@m.example', 'a2@m.example']);
  attempt(store, 'QA00000000001', SMTP, DAY + 1 * H + 1_000, [['a2@m.example', 'deferred']]);
  attempt(store, 'QA00000000001', SMTP, DAY + 1 * H + 2_000, [['a1@m.example', 'delivered']]);
  attempt(store, 'QA00000000001', SMTP, DAY + 2 * H, [['a2@m.example', 'delivered']]);
  message(store, 'QB00000000001', DAY + 3 * H, ['b1@m.example']);
  attempt(store, 'QB00000000001', SMTP, DAY + 3 * H + 1_000, [['b1@m.example', 'failed']]);
  message(store, 'QC00000000001', DAY + 5 * H, ['c1@m.example', 'c2@m.example', 'c3@m.example']);
  store.multilingual.recordChoices('QC00000000001', [choice('c1@m.example', 'select', 'de'), choice('c2@m.example', 'select', 'de'), choice('c3@m.example', 'unchanged', null)], DAY + 5 * H + 100);
  attempt(store, 'QC00000000001', MAILDIR, DAY + 5 * H + 500, [['c1@m.example', 'delivered'], ['c2@m.example', 'delivered'], ['c3@m.example', 'delivered']]);
  // QF: only its Message-ID matches an upstream message event (no maillog line): the fallback link
  message(store, 'QF00000000001', DAY + 6 * H, ['f1@m.example']);
  // QG: the bounce mailbag made for QB: received, but no upstream of its own
  message(store, 'QG00000000001', DAY + 3 * H + 2_000, ['sender@upstream.example']);
  store.correlation.recordOrigin('QG00000000001', 'QB00000000001', 'bounce', DAY + 3 * H + 2_000);
  keys(store, 'QA00000000001', DAY + 1 * H, 'a@up.example', '4UPA001');
  keys(store, 'QB00000000001', DAY + 3 * H, 'b@nowhere.example');
  keys(store, 'QC00000000001', DAY + 5 * H, 'c@up.example');
  keys(store, 'QF00000000001', DAY + 6 * H, 'f@up.example');
  message(store, 'QD00000000001', DAY - 1 * H, ['d1@m.example']);
  attempt(store, 'QD00000000001', SMTP, DAY + 600_000, [['d1@m.example', 'delivered']]);
  message(store, 'QE00000000001', DAY + 25 * H, ['e1@m.example']);
  attempt(store, 'QE00000000001', SMTP, DAY + 25 * H + 1_000, [['e1@m.example', 'deferred']]);

  const events = [
    messageEvent({ guid: 'guid-a', at: DAY + 1 * H - 5_000, upstreamQid: '4UPA001', messageId: 'a@up.example', disposition: 'continue', rules: [['spam', 'notspam'], ['access', 'system']] }),
    maillogEvent({ id: 'ml-a1', at: DAY + 1 * H - 5_000, upstreamQid: '4UPA001', fields: fromLine('sender@upstream.example', 'a@up.example') }),
    maillogEvent({ id: 'ml-a2', at: DAY + 1 * H, upstreamQid: '4UPA001', fields: sentToMailbagLine('a1@m.example', 'QA00000000001') }),
    messageEvent({ guid: 'guid-c', at: DAY + 5 * H - 5_000, upstreamQid: '4UPC001', messageId: 'c@up.example', disposition: 'continue', rules: [['access', 'system']] }),
    maillogEvent({ id: 'ml-c2', at: DAY + 5 * H, upstreamQid: '4UPC001', fields: sentToMailbagLine('c1@m.example', 'QC00000000001') }),
    // discarded upstream (spam), never reached mailbag: a message event only
    messageEvent({ guid: 'guid-x', at: DAY + 7 * H, upstreamQid: 'sid7-1', messageId: 'x@spam.example', disposition: 'discard', rules: [['spam', 'bulk'], ['spam', 'spam_definite']] }),
    messageEvent({ guid: 'guid-f', at: DAY + 6 * H - 5_000, upstreamQid: '4UPF001', messageId: 'f@up.example', disposition: 'continue', rules: [['access', 'system']] }),
    // handed to mailbag as a qid mailbag does not have (lost, or pruned): an upstream message unmatched
    maillogEvent({ id: 'ml-z', at: DAY + 6 * H, upstreamQid: '4UPZ001', fields: sentToMailbagLine('z@m.example', 'QZ00000000001') }),
    // delivered elsewhere: a next hop's queue id of another form, not counted as handed to mailbag
    maillogEvent({ id: 'ml-w', at: DAY + 6 * H, upstreamQid: '4UPW001', fields: 'to=<w@elsewhere.example>, delay=00:00:01, mailer=esmtp, pri=1, relay=elsewhere.example. [203.0.113.5], dsn=2.0.0, stat=Sent (Ok: queued as 4Fq1bX2kLmz9)' }),
    // the day before: in no figure of the day
    messageEvent({ guid: 'guid-y', at: DAY - 2 * H, upstreamQid: '4UPY001', messageId: 'y@up.example', disposition: 'reject', rules: [['spam', 'bulk']] }),
    // a payload that cannot be stored: dead-lettered at the time of import
    '{"not": "an event"',
  ];
  store.pod.storeBatch(
    events.map((e, i) => ingestToBatchItem(e, `test:${i + 1}`)),
    { source: 'test', now: DAY + 8 * H },
  );
}

/** The report of 2026-11-29T00:00Z .. 2026-11-30T00:00Z over the seeded store. */
export const EXPECTED = {
  window: { since: '2026-11-29T00:00:00.000Z', until: '2026-11-30T00:00:00.000Z', by: 'hour' },
  // QA, QB, QC, QF, QG received; delivered a1, a2, c1-c3, d1; deferred a2 once; bounced b1
  messages: { received: 5, delivered: 6, deferred: 1, bounced: 1 },
  // by next hop name; smtp: a1 2 s, a2 1 h, d1 1 h 10 min
  latency: [
    { nexthop: 'maildir:/var/mail', delivered: 3, p50Ms: 500, p90Ms: 500, p99Ms: 500 },
    { nexthop: 'smtp://hop1.example:25', delivered: 3, p50Ms: H, p90Ms: H + 600_000, p99Ms: H + 600_000 },
  ],
  languages: { selected: [{ tags: 'de', n: 2 }], byMode: [{ mode: 'select', n: 2 }, { mode: 'unchanged', n: 1 }] },
  pod: {
    message: 4,
    maillog: 5,
    deadLettered: 1,
    dispositions: [{ disposition: 'continue', n: 3 }, { disposition: 'discard', n: 1 }],
    topRules: [
      { module: 'access', rule: 'system', n: 3 },
      { module: 'spam', rule: 'bulk', n: 1 },
      { module: 'spam', rule: 'notspam', n: 1 },
      { module: 'spam', rule: 'spam_definite', n: 1 },
    ],
  },
  // Of QA, QB, QC, QF (QG is mailbag's bounce): QA (queued-as and Received id), QC (queued-as)
  // and QF (Message-ID) are linked. Upstream, 4UPA001 and 4UPC001 of the three handed to mailbag
  // are linked (4UPZ001's QZ... is not in the store).
  correlation: { messages: 4, linked: 3, byVia: { 'message-id': 1, 'queued-as': 2, received: 1 }, upstream: { messages: 3, linked: 2 } },
} as const;
