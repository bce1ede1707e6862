import t from 'tap';
import fc from 'fast-check';
import { rfc5322ToImpDate, impToRfc5322Date, parseImpDate, formatImpDate, formatRfc5322Date, parseRfc5322Date } from '../src/imp/mime/date.js';
import { TidAllocator } from '../src/imp/mime/tid-allocator.js';

t.test('RFC 5322 -> RFC 753 keeps local time and offset', async (t) => {
  t.equal(rfc5322ToImpDate('Thu, 29 Mar 1979 11:46:00 -0800'), '1979-03-29-11:46:00,000-08:00');
  t.equal(rfc5322ToImpDate('Wed, 25 Nov 2026 10:11:12 +0530'), '2026-11-25-10:11:12,000+05:30');
  t.equal(rfc5322ToImpDate('Mon, 23 Nov 2026 09:00:00 -0500 (EST)'), '2026-11-23-09:00:00,000-05:00');
  t.equal(rfc5322ToImpDate('1 Jan 99 00:00 EDT'), '1999-01-01-00:00:00,000-04:00');
  t.equal(rfc5322ToImpDate('Sun, 11 Jul 2004 16:09:27 -0300'), '2004-07-11-16:09:27,000-03:00');
  t.equal(rfc5322ToImpDate('  Fri,  4 Sep 1998   17:25:42 GMT '), '1998-09-04-17:25:42,000+00:00');
  for (const bad of ['', 'yesterday', '31 Feb 2020 10:00 +0000', '1 Foo 2020 10:00 +0000', '1 Jan 2020 25:00 +0000']) {
    t.equal(rfc5322ToImpDate(bad), undefined, `rejects ${JSON.stringify(bad)}`);
  }
});

t.test('RFC 753 -> RFC 5322, including the short form of Example 1', async (t) => {
  t.equal(impToRfc5322Date('1979-03-29-11:46-08:00'), 'Thu, 29 Mar 1979 11:46:00 -0800');
  t.equal(impToRfc5322Date('2026-11-25-10:11:12,345+05:30'), 'Wed, 25 Nov 2026 10:11:12 +0530');
  t.equal(impToRfc5322Date('2000-02-29-00:00:00Z'), 'Tue, 29 Feb 2000 00:00:00 +0000');
  t.same(parseImpDate('1979-03-29-11:46-08:00'), { year: 1979, month: 3, day: 29, hour: 11, minute: 46, second: 0, millisecond: 0, offset: -480 });
  t.equal(impToRfc5322Date('1979-13-29-11:46-08:00'), undefined);
  t.equal(impToRfc5322Date('Thu, 29 Mar 1979'), undefined);
});

t.test('property: both directions are inverse on whole seconds', async (t) => {
  fc.assert(
    fc.property(
      fc.date({ min: new Date('1900-01-01T00:00:00Z'), max: new Date('2999-12-31T00:00:00Z'), noInvalidDate: true }),
      fc.integer({ min: -23 * 60 - 59, max: 23 * 60 + 59 }),
      (date, offset) => {
        const local = new Date(date.getTime() + offset * 60000);
        const d = {
          year: local.getUTCFullYear(), month: local.getUTCMonth() + 1, day: local.getUTCDate(), hour: local.getUTCHours(),
          minute: local.getUTCMinutes(), second: local.getUTCSeconds(), millisecond: 0, offset,
        };
        const imp = formatImpDate(d);
        const mail = formatRfc5322Date(d);
        return (
          JSON.stringify(parseImpDate(imp)) === JSON.stringify(d) && JSON.stringify(parseRfc5322Date(mail)) === JSON.stringify(d) &&
          rfc5322ToImpDate(mail) === imp
        );
      },
    ),
    { numRuns: 500 },
  );
  t.pass();
});

t.test('TidAllocator: sequential, wraps at 16 bits, injectable start', async (t) => {
  const a = new TidAllocator({ ihn: 167772404, start: 65534 });
  t.same([a.allocate(), a.allocate(), a.allocate()], [
    { tn: 65534, ihn: 167772404 }, { tn: 65535, ihn: 167772404 }, { tn: 0, ihn: 167772404 },
  ]);
  t.equal(a.next, 1);
  t.equal(new TidAllocator({ ihn: 1 }).allocate().tn, 0);
  t.throws(() => new TidAllocator({ ihn: 1, start: 65536 }), RangeError);
});
