import { createPublicKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { authenticate } from 'mailauth';
import { dkimSign } from 'mailauth/lib/dkim/sign.js';
import { simpleParser } from 'mailparser';
import t from 'tap';
import { arcSealCopy, authenticateReceived } from '../src/delivery/rewrite/authentication.js';
import { parseLanguagePreferences } from '../src/mime/language-range.js';
import { analyseMultilingual, isRewritable, rewriteSelect, selectLanguagePart } from '../src/mime/multilingual.js';
import { parseMimeTree } from '../src/mime/tree.js';

// Fixed keys and a fixed signing time make the signatures the same bytes on every run:
// with a fresh random key per run, mailauth's own sign-then-verify of unchanged bytes
// failed ("bad signature") for about one key in three hundred, which is not what this
// test is about.
function keyPair(name: string) {
  const pem = readFileSync(new URL(`./fixtures/keys/${name}.pem`, import.meta.url), 'utf8');
  return { pem, spki: createPublicKey(pem).export({ type: 'spki', format: 'der' }).toString('base64') };
}
const sender = keyPair('dkim-sender');
const arcKey = keyPair('arc-gateway');
const SIGN_TIME = new Date('2026-11-30T08:00:00Z');
const records: Record<string, string> = {
  'sel._domainkey.example.com': `v=DKIM1; k=rsa; p=${sender.spki}`,
  'arc._domainkey.gateway.example.test': `v=DKIM1; k=rsa; p=${arcKey.spki}`,
};
// The stub resolver answers the two keys and says NXDOMAIN to everything else (SPF, DMARC).
const resolver = async (name: string, type: string) => {
  const record = type === 'TXT' ? records[name] : undefined;
  if (record) return [[record]];
  throw Object.assign(new Error(`no ${type} record for ${name}`), { code: 'ENOTFOUND' });
};

async function signedExample(): Promise<Buffer> {
  const source = readFileSync(new URL('./fixtures/multilingual/rfc8255-8.1.eml', import.meta.url));
  const signOptions = { signTime: SIGN_TIME, signatureData: [{ signingDomain: 'example.com', selector: 'sel', privateKey: sender.pem }] };
  const { signatures } = await dkimSign(source, signOptions as unknown as Parameters<typeof dkimSign>[1]);
  return Buffer.concat([Buffer.from(signatures), source]);
}

t.test('DKIM is verified on the bytes as received, the verdict recorded in Authentication-Results', async (t) => {
  const signed = await signedExample();
  const received = await authenticateReceived(signed, { authservId: 'gateway.example.test', resolver });
  t.same(received.dkim, ['pass']);
  t.match(received.field.toString(), /^Authentication-Results: gateway\.example\.test;\r\n dkim=pass header\.i=@example\.com header\.s=sel/);
  t.equal(received.cv, 'none', 'no ARC chain yet');
  t.equal(received.nextInstance, 1);

  const tampered = Buffer.from(signed.toString('latin1').replace('Hello, this message', 'Hello, THIS message'), 'latin1');
  const bad = await authenticateReceived(tampered, { authservId: 'gateway.example.test', resolver });
  t.same(bad.dkim, ['neutral'], 'a body changed after signing does not pass (body hash mismatch)');
});

t.test('an ARC-sealed rewritten copy verifies with mailauth and a stub resolver', async (t) => {
  const signed = await signedExample();
  const received = await authenticateReceived(signed, { authservId: 'gateway.example.test', resolver });
  const m = analyseMultilingual(parseMimeTree(signed));
  if (!isRewritable(m)) throw new Error(m.reason);
  const copy = Buffer.concat([received.field, rewriteSelect(m, selectLanguagePart(m, parseLanguagePreferences('es')).part)]);
  const afterRewrite = await authenticate(copy, { resolver, disableBimi: true, mta: 'next.example.test', ip: '127.0.0.1', helo: 'gateway.example.test', sender: 'nik@example.com' });
  t.not(afterRewrite.dkim.results[0]?.status.result, 'pass', 'the rewrite broke the sender signature, as expected');

  const seal = await arcSealCopy(copy, { signingDomain: 'gateway.example.test', selector: 'arc', privateKey: arcKey.pem }, received, SIGN_TIME);
  t.match(seal.toString(), /^ARC-Seal: i=1; a=rsa-sha256; t=\d+; cv=none; d=gateway\.example\.test;\r\n\s+s=arc;/);
  t.match(seal.toString(), /ARC-Authentication-Results: i=1; gateway\.example\.test;\r\n dkim=pass header\.i=@example\.com/, 'the verdict on the original travels in the seal');
  const sealed = Buffer.concat([seal, copy]);
  const verdict = await authenticate(sealed, { resolver, disableBimi: true, mta: 'next.example.test', ip: '127.0.0.1', helo: 'gateway.example.test', sender: 'nik@example.com' });
  t.equal(verdict.arc && verdict.arc.status.result, 'pass', 'ARC chain passes at the next hop');
  const parsed = await simpleParser(sealed);
  t.equal(parsed.subject, 'Ejemplo práctico de mensaje en español e inglés');
});
