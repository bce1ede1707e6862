import t from 'tap';
import { QidGenerator, isQid } from '../src/delivery/qid.js';
import { domainMatches, resolveRoute } from '../src/delivery/routes.js';
import { RelayPolicy } from '../src/smtp/relay-policy.js';
import { receivedHeader } from '../src/smtp/received.js';
import { validateConfig } from '../src/config/load.js';

t.test('qids: unique, sortable, monotonic across restarts and clock steps', async (t) => {
  const g = new QidGenerator();
  const now = Date.UTC(2026, 10, 25, 10, 0, 0);
  const ids = [g.next(now), g.next(now), g.next(now + 1), g.next(now - 5000), g.next(now - 5000)];
  t.ok(ids.every(isQid), ids.join(' '));
  t.same([...ids].sort(), ids, 'each id sorts after the previous one, even with the clock stepped back');
  t.equal(new Set(ids).size, ids.length);
  const restarted = new QidGenerator(ids.at(-1));
  const next = restarted.next(now - 60_000);
  t.ok(next > ids.at(-1)!, 'seeded with the store maximum, a restart never reuses an id');
  const busy = new QidGenerator();
  let prev = '';
  for (let i = 0; i < 36 ** 4 + 10; i++) {
    const id = busy.next(now);
    if (id <= prev) t.fail(`not increasing at ${i}`);
    prev = id;
  }
  t.pass('more ids than the per-millisecond counter holds still increase');
});

t.test('route patterns and table order', async (t) => {
  t.ok(domainMatches('example.test', 'example.test'));
  t.notOk(domainMatches('example.test', 'sub.example.test'));
  t.ok(domainMatches('*.example.test', 'a.b.example.test'));
  t.notOk(domainMatches('*.example.test', 'example.test'), '*.suffix is subdomains only');
  t.notOk(domainMatches('*.example.test', 'badexample.test'));
  t.ok(domainMatches('*', 'anything.test'));
  const { routes } = validateConfig({
    routes: [
      { domain: 'a.test', nexthop: 'maildir:/m' },
      { domain: '*.a.test', nexthop: 'lmtp://127.0.0.1:24' },
      { domain: '*', nexthop: 'smtp://127.0.0.1:25' },
    ],
  });
  t.equal(resolveRoute(routes, 'x@A.Test')?.nexthop.kind, 'maildir', 'domains compare case-insensitively');
  t.equal(resolveRoute(routes, 'x@sub.a.test')?.nexthop.kind, 'lmtp');
  t.equal(resolveRoute(routes, 'x@other.test')?.nexthop.kind, 'smtp');
  t.equal(resolveRoute(routes.slice(0, 1), 'x@other.test'), undefined);
});

t.test('relay policy: local domains, trusted networks (v4, v6, mapped), authentication', async (t) => {
  const p = new RelayPolicy(['example.test', '*.example.test'], ['10.0.0.0/8', '2001:db8::/32', '192.0.2.1']);
  t.ok(p.mayRelay('a@example.test', { ip: '203.0.113.5', authenticated: false }));
  t.ok(p.mayRelay('a@x.example.test', { ip: '203.0.113.5', authenticated: false }));
  t.notOk(p.mayRelay('a@elsewhere.test', { ip: '203.0.113.5', authenticated: false }));
  t.ok(p.mayRelay('a@elsewhere.test', { ip: '203.0.113.5', authenticated: true }));
  t.ok(p.mayRelay('a@elsewhere.test', { ip: '10.9.8.7', authenticated: false }));
  t.ok(p.mayRelay('a@elsewhere.test', { ip: '::ffff:10.9.8.7', authenticated: false }), 'IPv4-mapped IPv6');
  t.ok(p.mayRelay('a@elsewhere.test', { ip: '2001:db8::5', authenticated: false }));
  t.ok(p.mayRelay('a@elsewhere.test', { ip: '192.0.2.1', authenticated: false }), 'single address');
  t.notOk(p.mayRelay('a@elsewhere.test', { ip: '192.0.2.2', authenticated: false }));
  t.throws(() => new RelayPolicy([], ['10.0.0.0/40']), /bad prefix length/);
});

t.test('Received: header cannot be used to inject header lines', async (t) => {
  const h = receivedHeader({
    helo: 'evil\r\nX-Injected: yes',
    clientAddress: '127.0.0.1',
    by: 'mx.test',
    protocol: 'ESMTP',
    qid: '0MWVXT19Y0000',
    recipient: 'a@b.test>\r\nBcc: c@d.test',
    date: new Date(Date.UTC(2026, 10, 25, 9, 37, 38)),
  }).toString();
  t.equal(h.split('\r\n').filter((l) => /^\S/.test(l)).length, 1, 'one header, folded lines only');
  t.match(h, /^Received: from evilX-Injected:yes \(\[127\.0\.0\.1\]\)\r\n\tby mx\.test \(mailbag\) with ESMTP id 0MWVXT19Y0000\r\n\tfor <a@b\.testBcc:c@d\.test>;\r\n\tWed, 25 Nov 2026 09:37:38 \+0000\r\n$/);
});
