import t from 'tap';
import { formatPodTime, formatUtc, parsePodTime } from '../src/pod/time.js';

t.test('both offset spellings with microseconds give one canonical instant', async (t) => {
  const colon = parsePodTime('2017-08-17T14:54:12.949180-07:00');
  const bare = parsePodTime('2017-08-17T14:54:12.949180-0700');
  t.equal(colon.utc, '2017-08-17T21:54:12.949180Z');
  t.equal(bare.utc, colon.utc);
  t.equal(bare.epochUs, colon.epochUs);
  t.equal(colon.epochUs, Date.UTC(2017, 7, 17, 21, 54, 12) * 1000 + 949180, 'microseconds kept, not rounded to ms');
  t.equal(colon.offsetMinutes, -420);
});

t.test('the document and corpus spellings', async (t) => {
  for (const [text, utc] of [
    ['2018-01-25T02:37:40-0800', '2018-01-25T10:37:40.000000Z'], // sinceTime without a fraction
    ['2018-01-25T02:37:40.000-0800', '2018-01-25T10:37:40.000000Z'], // milliseconds
    ['2020-11-17T14:00:00-0005', '2020-11-17T14:05:00.000000Z'], // the document's (sic) offset
    ['2018-08-31T00:00:00-0800', '2018-08-31T08:00:00.000000Z'],
    ['2020-02-07T09:15:49.686439-0800', '2020-02-07T17:15:49.686439Z'], // Sumo Logic sample
    ['2025-05-11T07:05:02.318134-0700', '2025-05-11T14:05:02.318134Z'], // DataDog sample
    ['2024-05-09T15:25:41.855197-0700', '2024-05-09T22:25:41.855197Z'],
    ['2024-12-31T23:30:00.5+05:30', '2024-12-31T18:00:00.500000Z'], // east of UTC
    ['2024-12-31T20:00:00.123456789-05:00', '2025-01-01T01:00:00.123456Z'], // nanoseconds cut to micros
    ['2024-02-29T00:00:00Z', '2024-02-29T00:00:00.000000Z'],
    ['2024-03-10T01:59:59.999999-0800', '2024-03-10T09:59:59.999999Z'],
  ] as const) {
    t.equal(parsePodTime(text).utc, utc, text);
  }
});

t.test('canonical UTC strings sort in time order across offsets', async (t) => {
  const a = parsePodTime('2024-06-19T05:25:41.855197-07:00'); // 12:25:41Z
  const b = parsePodTime('2024-06-19T13:00:00.000001+0100'); // 12:00:00Z
  t.ok(b.utc < a.utc && b.epochUs < a.epochUs);
});

t.test('invalid times are refused with ERR_POD_TIME', async (t) => {
  for (const bad of [
    '2017-08-17 14:54:12-07:00',
    '2017-08-17T14:54:12', // no offset: the instant is unknown
    '2017-13-01T00:00:00Z',
    '2023-02-29T00:00:00Z',
    '2017-08-17T24:00:00Z',
    '2017-08-17T14:54:60Z',
    '2017-08-17T14:54:12-2400',
    '2017-08-17T14:54:12.-0700',
    '',
  ]) {
    t.throws(() => parsePodTime(bad), { name: 'PodError', code: 'ERR_POD_TIME' }, JSON.stringify(bad));
  }
});

t.test('formatting: UTC and PoD spelling round-trip', async (t) => {
  const i = parsePodTime('2017-08-17T14:54:12.949180-07:00');
  t.equal(formatUtc(i.epochUs), i.utc);
  t.equal(formatPodTime(i.epochUs, i.offsetMinutes), '2017-08-17T14:54:12.949180-0700');
  t.equal(parsePodTime(formatPodTime(i.epochUs, 330)).epochUs, i.epochUs);
  t.equal(formatUtc(-1), '1969-12-31T23:59:59.999999Z', 'before the epoch');
});

t.test('years 0-99 are those years, not 1900-1999', async (t) => {
  const at = parsePodTime('0042-03-04T05:06:07.000008+01:00');
  t.equal(at.utc, '0042-03-04T04:06:07.000008Z');
  const expected = new Date(0);
  expected.setUTCFullYear(42, 2, 4);
  expected.setUTCHours(4, 6, 7, 0);
  t.equal(at.epochUs, expected.getTime() * 1000 + 8);
});
