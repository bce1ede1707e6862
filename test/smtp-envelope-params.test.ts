import t from 'tap';
import { SmtpReplyError } from '../src/smtp/reply.js';
import { decodeXtext, isXtext, mailParams, postmasterAddress, recipientParams, refuseSourceRoutedLocalPart, writtenCommand } from '../src/smtp/envelope-params.js';

function refusal(fn: () => unknown): string {
  try {
    fn();
    return 'accepted';
  } catch (err) {
    return err instanceof SmtpReplyError ? `${err.responseCode} ${err.enhancedCode}` : String(err);
  }
}

t.test('the command as written: punycode kept, source route dropped, parameters raw', async (t) => {
  const c = writtenCommand('MAIL FROM:<@relay.test,@b.test:ann@xn--bcher-kva.example> body=8BITMIME ENVID=a+2Bb SMTPUTF8')!;
  t.equal(c.address, 'ann@xn--bcher-kva.example');
  t.same([...c.params], [['BODY', '8BITMIME'], ['ENVID', 'a+2Bb'], ['SMTPUTF8', true]]);
  t.equal(writtenCommand('MAIL FROM:ann@x'), undefined, 'no angle brackets');
});

t.test('xtext (RFC 3461 section 4)', async (t) => {
  for (const ok of ['abc', 'a+2Bb', '+20', '!~', '']) t.ok(isXtext(ok), ok);
  for (const bad of ['a+zz', 'a+2b', 'a=b', 'a b', 'ä', 'a+2']) t.notOk(isXtext(bad), bad);
  t.equal(decodeXtext('rfc822;bob+40x.test+2B1'), 'rfc822;bob@x.test+1');
});

t.test('MAIL FROM and RCPT TO parameters: stored decoded, malformed refused', async (t) => {
  t.same(mailParams(writtenCommand('MAIL FROM:<a@b> BODY=8bitmime SIZE=12 RET=full ENVID=x+2By')!), {
    bodyType: '8bitmime', smtpUtf8: false, declaredSize: 12, dsnRet: 'FULL', dsnEnvid: 'x+y',
  });
  t.equal(refusal(() => mailParams(writtenCommand('MAIL FROM:<a@b> ENVID=')!)), '501 5.5.4');
  t.equal(refusal(() => mailParams(writtenCommand(`MAIL FROM:<a@b> ENVID=${'x'.repeat(101)}`)!)), '501 5.5.4');
  t.equal(refusal(() => mailParams(writtenCommand('MAIL FROM:<zoë@b>')!)), '553 5.6.7');
  t.equal(refusal(() => mailParams(writtenCommand('MAIL FROM:<zoë@b> SMTPUTF8')!)), 'accepted');
  t.same(recipientParams(writtenCommand('RCPT TO:<a@b> NOTIFY=success,delay ORCPT=rfc822;A+40B')!, false), { notify: ['SUCCESS', 'DELAY'], orcpt: 'rfc822;A@B' });
  t.equal(refusal(() => recipientParams(writtenCommand('RCPT TO:<a@b> ORCPT=rfc822')!, false)), '501 5.5.4', 'no semicolon');
  t.equal(refusal(() => recipientParams(writtenCommand('RCPT TO:<a@b> ORCPT=rfc822;')!, false)), '501 5.5.4', 'empty address');
  t.equal(refusal(() => recipientParams(writtenCommand(`RCPT TO:<a@b> ORCPT=rfc822;${'x'.repeat(500)}`)!, false)), '501 5.5.4', 'over 500');
  t.equal(refusal(() => recipientParams(writtenCommand('RCPT TO:<a@b> ORCPT=utf-8;jürgen@b')!, false)), '501 5.5.4', 'raw UTF-8 only with SMTPUTF8');
  t.equal(refusal(() => recipientParams(writtenCommand('RCPT TO:<a@b> ORCPT=utf-8;jürgen@b')!, true)), 'accepted');
  t.equal(refusal(() => recipientParams(writtenCommand('RCPT TO:<jürgen@b>')!, false)), '553 5.6.7');
});

t.test('address rules: percent hack, bang path, postmaster', async (t) => {
  t.equal(refusal(() => refuseSourceRoutedLocalPart('a%b@c')), '550 5.7.1');
  t.equal(refusal(() => refuseSourceRoutedLocalPart('b!a@c')), '550 5.7.1');
  t.equal(refusal(() => refuseSourceRoutedLocalPart('plain@c%d')), 'accepted', 'only the local part counts');
  t.equal(postmasterAddress(['*.example.test', 'example.test', 'other.test']), 'postmaster@example.test', 'first domain that is not a pattern');
  t.equal(postmasterAddress(['*.example.test']), undefined);
});

t.test('xtext octets: UTF-8 sequences become their characters, other octets stay one character each', async (t) => {
  t.equal(decodeXtext('rfc822;j+C3+BCrgen@b'), 'rfc822;jürgen@b');
  t.equal(decodeXtext('utf-8;jürgen+2B1@b'), 'utf-8;jürgen+1@b', 'raw UTF-8 next to +XX');
  t.equal(decodeXtext('caf+E9'), 'caf\u00e9', 'not UTF-8: one character per octet');
});
