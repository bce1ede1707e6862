// The embedded defaults (`npm start` with no config) serve IMP on 127.0.0.1:7530 and
// deliver example.test locally; a config without imp.listen has no IMP listener.
import t from 'tap';
import { DEFAULT_CONFIG_PATH, loadConfig, validateConfig } from '../src/config/load.js';
import { ImpRecipientPolicy } from '../src/mpm/recipient-policy.js';

t.test('embedded defaults: the IMP listener on 127.0.0.1:7530, example.test local', async (t) => {
  const c = loadConfig(DEFAULT_CONFIG_PATH);
  t.same(c.imp.listen, { host: '127.0.0.1', port: 7530 });
  const policy = new ImpRecipientPolicy(c.routes, c.smtp.localDomains, c.imp.trustedPeers);
  t.match(policy.classify('alice@example.test', '192.0.2.1'), { ok: true, kind: 'local' });
  t.match(policy.classify('alice@elsewhere.test', '192.0.2.1'), { ok: false, reason: 'no such host' });
  t.equal(validateConfig({}).imp.listen, undefined, 'no imp.listen, no IMP listener');
});

t.test('local, local-net and foreign messages (RFC 753 section 3.7) and who may relay them', async (t) => {
  const c = validateConfig({
    smtp: { localDomains: ['example.test'] },
    imp: { trustedPeers: ['10.0.0.0/8'] },
    routes: [
      { domain: 'example.test', nexthop: 'maildir:/tmp/m' },
      { domain: 'net.test', nexthop: 'smtp://10.1.1.1:25' },
    ],
  });
  const policy = new ImpRecipientPolicy(
    // imp:// next hops are validated by the routing side; a stand-in route with that URL.
    [...c.routes, { domain: 'far.test', nexthop: { kind: 'smtp', host: 'x', port: 1, url: 'imp://x:1' } as never }],
    c.smtp.localDomains,
    c.imp.trustedPeers,
  );
  t.match(policy.classify('a@example.test', '192.0.2.1'), { ok: true, kind: 'local' });
  t.match(policy.classify('a@net.test', '10.2.3.4'), { ok: true, kind: 'local-net' });
  t.match(policy.classify('a@far.test', '10.2.3.4'), { ok: true, kind: 'foreign' });
  t.match(policy.classify('a@net.test', '192.0.2.1'), { ok: false, reason: /relaying denied/ });
  t.match(policy.classify('../x@example.test', '192.0.2.1'), { ok: false, reason: 'no such user' });
  t.match(policy.classify('nobody', '192.0.2.1'), { ok: false, reason: 'no such host' });
});
