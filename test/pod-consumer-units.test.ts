// The consumer's pure parts: request URLs, archive hour windows and the 30-day limit, gap
// detection, reconnect delays and what each refusal does.
import t from 'tap';
import {
  ARCHIVE_LIMIT_MS,
  archiveWindow,
  backoffDelay,
  conflictDelay,
  formatArchiveTime,
  gapBeforeLive,
  HOUR_MS,
  refusalAction,
  streamUrl,
} from '../src/pod/consumer.js';

t.test('streamUrl: /v1/stream on the endpoint, query parameters encoded', async (t) => {
  t.equal(streamUrl('wss://logstream.proofpoint.com/', { cid: 'c1', type: 'message' }), 'wss://logstream.proofpoint.com/v1/stream?cid=c1&type=message');
  t.equal(streamUrl('wss://h.test:8443/v1/stream', { cid: 'c 1', type: 'maillog' }), 'wss://h.test:8443/v1/stream?cid=c+1&type=maillog');
  t.equal(
    streamUrl('ws://127.0.0.1:1/proxy', { cid: 'c', type: 'message', sinceTime: '2026-11-17T13:00:00+0000', toTime: '2026-11-17T14:00:00+0000' }),
    'ws://127.0.0.1:1/proxy/v1/stream?cid=c&type=message&sinceTime=2026-11-17T13%3A00%3A00%2B0000&toTime=2026-11-17T14%3A00%3A00%2B0000',
    'the + of the offset is escaped, not sent as a space',
  );
});

t.test('archiveWindow: since down and until up to the hour, as the document rounds', async (t) => {
  const now = Date.parse('2018-01-26T00:00:00Z');
  const w = archiveWindow(Date.parse('2018-01-25T22:12:34Z'), Date.parse('2018-01-25T22:31:23Z'), now)!;
  t.equal(w.sinceTime, '2018-01-25T22:00:00+0000');
  t.equal(w.toTime, '2018-01-25T23:00:00+0000');
  t.equal(w.clippedFromMs, undefined);
  const exact = archiveWindow(Date.parse('2018-01-25T20:00:00Z'), Date.parse('2018-01-25T21:00:00Z'), now)!;
  t.equal(exact.toTime, '2018-01-25T21:00:00+0000', 'a whole hour stays');
  t.equal(formatArchiveTime(Date.parse('2020-11-17T19:00:00Z')), '2020-11-17T19:00:00+0000');
});

t.test('archiveWindow: never older than 30 days, and says what it had to leave out', async (t) => {
  const now = Date.parse('2026-11-30T10:20:00Z');
  const w = archiveWindow(now - 40 * 24 * HOUR_MS, now - 2 * HOUR_MS, now)!;
  t.ok(w.sinceMs >= now - ARCHIVE_LIMIT_MS, 'inside the limit');
  t.equal(w.sinceTime, '2026-10-31T11:00:00+0000', 'the oldest whole hour within 30 days');
  t.equal(w.clippedFromMs, Date.parse('2026-10-21T10:00:00Z'));
  t.equal(archiveWindow(now - 40 * 24 * HOUR_MS, now - 35 * 24 * HOUR_MS, now), undefined, 'all of it is beyond reach');
});

t.test('gapBeforeLive: only a drop of more than an hour leaves a gap', async (t) => {
  const now = Date.parse('2026-11-30T15:00:00Z');
  t.equal(gapBeforeLive(undefined, now), undefined, 'nothing received yet: nothing to resume');
  t.equal(gapBeforeLive(now - HOUR_MS, now), undefined, 'an hour: the live session resumes from the drop');
  t.same(gapBeforeLive(now - 2 * HOUR_MS, now), { sinceMs: now - 2 * HOUR_MS, untilMs: now - HOUR_MS }, 'two hours: the first one from the archive');
});

t.test('backoffDelay: doubles up to the cap, with jitter between half and all of it', async (t) => {
  t.equal(backoffDelay(0, 1000, 300_000, 0), 500);
  t.equal(backoffDelay(0, 1000, 300_000, 0.999999), 1000);
  t.equal(backoffDelay(3, 1000, 300_000, 0), 4000);
  t.equal(backoffDelay(30, 1000, 300_000, 0.999999), 300_000, 'capped');
  t.equal(backoffDelay(5000, 1000, 300_000, 0), 150_000, 'no overflow after many failures');
  t.equal(conflictDelay(600_000, 0), 600_000);
  t.equal(conflictDelay(600_000, 0.999999), 750_000);
});

t.test('refusalAction: the error table', async (t) => {
  for (const s of [400, 401, 404, 405]) t.equal(refusalAction(s).action, 'stop', String(s));
  t.equal(refusalAction(409).action, 'conflict');
  t.match(refusalAction(409).why, /in use by another session/);
  t.equal(refusalAction(503).action, 'retry');
  t.match(refusalAction(401).why, /token/);
});
