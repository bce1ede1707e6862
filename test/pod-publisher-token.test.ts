// `mailbag pod token`, the HS256 tokens it mints and the /v1/stream query rules.
import t from 'tap';
import { statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadOrCreateSecret } from '../src/gateway/pod-secret.js';
import { signToken, TokenError, verifyToken } from '../src/pod/jwt.js';
import { BadStreamRequest, parseStreamRequest } from '../src/pod/stream-request.js';
import { parsePodTime } from '../src/pod/time.js';
import { cli } from './helpers/cli.js';
import { tempDir } from './helpers/gateway.js';

t.test('mailbag pod token mints a token the publisher accepts', async (t) => {
  const { dir, cleanup } = tempDir('pod-token');
  t.teardown(cleanup);
  const secretFile = join(dir, 'var', 'pod.secret');
  const cfg = join(dir, 'mailbag.yaml');
  writeFileSync(cfg, `store: { path: ${JSON.stringify(join(dir, 'm.db'))} }\npod:\n  publisher:\n    cid: c1\n    secretFile: ${JSON.stringify(secretFile)}\n`);
  const before = Math.floor(Date.now() / 1000);
  const r = await cli(['pod', 'token', '--cid', 'c1', '--expires', '30d', '--config', cfg]);
  t.equal(r.code, 0, r.stderr);
  t.equal(statSync(secretFile).mode & 0o777, 0o600, 'the secret is created with mode 0600');
  // A token from a new secret works only for a gateway started after it with the same file:
  // minted from the wrong directory (a relative secretFile) it would fail with 401, so say so.
  t.match(r.stderr, new RegExp(`^mailbag pod token: warning: created a new secret in ${secretFile.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: `));
  const claims = verifyToken(loadOrCreateSecret(secretFile), r.stdout.toString().trim());
  t.equal(claims.cid, 'c1');
  t.equal(claims.exp - claims.iat, 30 * 86_400, 'expires in 30 days');
  t.ok(claims.iat >= before);
  const again = await cli(['pod', 'token', '--cid', 'c1', '--config', cfg]);
  t.equal(again.stderr, '', 'the existing secret: no warning');
  t.not(again.stdout.toString(), r.stdout.toString(), 'each token has its own id (one session per token)');
  t.equal(verifyToken(loadOrCreateSecret(secretFile), again.stdout.toString().trim()).exp - claims.iat >= 30 * 86_400, true, 'default 30d');
  const other = await cli(['pod', 'token', '--cid', 'c2', '--config', cfg]);
  t.equal(other.code, 1, 'a cid the publisher does not serve');
  t.match(other.stderr, /serves cid "c1"/);
  t.equal((await cli(['pod', 'token', '--config', cfg])).code, 2, '--cid is required');
  t.equal((await cli(['pod', 'token', '--cid', 'c1', '--expires', 'soon', '--config', cfg])).code, 2, 'a bad --expires');
});

t.test('HS256 tokens: tampering, another algorithm and expiry are refused', async (t) => {
  const secret = Buffer.from('0123456789abcdef0123456789abcdef');
  const tok = signToken(secret, { cid: 'x', expiresInSec: 60 }, 1_000_000);
  t.equal(verifyToken(secret, tok, 1_000_000).cid, 'x');
  const [h, p] = tok.split('.');
  const forged = Buffer.from(JSON.stringify({ cid: 'y', jti: 'j', iat: 1000, exp: 9_999_999_999 })).toString('base64url');
  t.throws(() => verifyToken(secret, `${h}.${forged}.${tok.split('.')[2]}`, 1_000_000), TokenError, 'changed claims');
  const none = Buffer.from(JSON.stringify({ alg: 'none', typ: 'JWT' })).toString('base64url');
  t.throws(() => verifyToken(secret, `${none}.${p}.`, 1_000_000), /not HS256/, 'alg none');
  t.throws(() => verifyToken(secret, tok, 1_000_000 + 61_000), /expired/);
  t.throws(() => verifyToken(Buffer.from('another secret of some length'), tok, 1_000_000), /signature/);
  t.throws(() => verifyToken(secret, 'abc', 1_000_000), /three/);
});

t.test('stream query: modes, hour rounding, the 30-day limit, 400 reasons', async (t) => {
  const now = parsePodTime('2026-11-30T12:34:56-0000').epochUs / 1000;
  const q = (s: string) => parseStreamRequest(new URLSearchParams(s), now);
  t.same(q('cid=c&type=message').mode, { kind: 'live' });
  const ms = (s: string) => parsePodTime(s).epochUs / 1000;
  t.same(q('cid=c&type=maillog&sinceTime=2026-11-25T14:12:34-0800&toTime=2026-11-25T14:31:23-0800').mode, {
    kind: 'archive',
    fromMs: ms('2026-11-25T14:00:00-0800'),
    toMs: ms('2026-11-25T15:00:00-0800'),
  }, "the document's rounding example");
  t.same(q('cid=c&type=message&sinceTime=2026-11-30T01:00:00.000-0000').mode, { kind: 'archive', fromMs: ms('2026-11-30T01:00:00Z'), toMs: ms('2026-11-30T13:00:00Z') }, 'toTime defaults to now, rounded up');
  t.same(q('cid=c&type=message&sinceTime=2026-11-30T12:00:00-0000').mode, { kind: 'live' }, 'a sinceTime within the hour is not used');
  t.same(q('cid=c&type=message&sinceTime=2018-08-31T00:00:00-0800').mode, { kind: 'archive', fromMs: ms('2026-10-31T13:00:00Z'), toMs: ms('2026-11-30T13:00:00Z') }, 'older than 30 days starts at the limit');
  for (const bad of ['type=message', 'cid=&type=message', 'cid=c', 'cid=c&type=', 'cid=c&type=mail', 'cid=c&type=message&sinceTime=x', 'cid=c&type=message&toTime=2026-11-29T00:00:00Z', 'cid=c&type=message&sinceTime=2026-11-29T02:00:00Z&toTime=2026-11-29T01:00:00Z']) {
    t.throws(() => q(bad), BadStreamRequest, bad);
  }
  t.throws(() => q('cid=c&type=message&sinceTime='), { message: 'invalid sinceTime: empty' }, 'an empty sinceTime is named, not toTime');
  // A '+' offset typed into a URL unencoded arrives as a space (form decoding): read as '+'.
  t.same(q('cid=c&type=message&sinceTime=2026-11-30T03:00:00+0100').mode, { kind: 'archive', fromMs: ms('2026-11-30T02:00:00Z'), toMs: ms('2026-11-30T13:00:00Z') });
  t.same(q('cid=c&type=message&sinceTime=2026-11-30T03:00:00%2B01:00&toTime=2026-11-30T05:00:00+01:00').mode, { kind: 'archive', fromMs: ms('2026-11-30T02:00:00Z'), toMs: ms('2026-11-30T04:00:00Z') });
});
