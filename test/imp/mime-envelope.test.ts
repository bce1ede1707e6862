// Envelope addresses read from a DELIVER (the mailbox's USER and HOST, the document's
// ENVELOPE-FROM) go into the spool's envelope and, for a document without a From, into
// the From field written for it: a line break or angle bracket in them would inject
// header fields (or end the header early), so such an address is a syntax error.
import t from 'tap';
import { deliverCommand, ImpError, proplist, textElement, type ImpMessage } from '../../src/imp/index.js';
import { impMessageToMime, mailboxAddress } from '../../src/imp/mime/index.js';

const message = (envelopeFrom: string | undefined, user = 'alice', host = 'example.test'): ImpMessage => ({
  tid: { tn: 1, ihn: 2 },
  command: deliverCommand({ mailbox: proplist({ HOST: host, USER: user }), stamp: [2] }),
  document: {
    header: proplist({ SUBJECT: 'hello', ...(envelopeFrom === undefined ? {} : { 'ENVELOPE-FROM': envelopeFrom }) }),
    body: { type: 'list', items: [textElement('body')] },
  },
});

t.test('an ordinary ENVELOPE-FROM becomes the envelope sender and the From written for the document', async (t) => {
  const mime = impMessageToMime(message('ann@sender.test'));
  t.equal(mime.envelopeFrom, 'ann@sender.test');
  t.match(mime.raw.toString('latin1'), /\r\nFrom: <ann@sender\.test>\r\n/);
  t.equal(impMessageToMime(message('')).envelopeFrom, '', 'the null sender');
});

t.test('an ENVELOPE-FROM with a line break or an angle bracket is refused with its path', async (t) => {
  for (const bad of ['x@y.test>\r\nBcc: victim@else.test', '\r\n.\r\n\r\n', 'a\nb@y.test', 'a\rb@y.test', 'a>@y.test', '<a@y.test', 'a\x00b@y.test']) {
    t.throws(() => impMessageToMime(message(bad), 'message[3]'), { code: 'ERR_IMP_MESSAGE', path: /^message\[3\]\.document\.header/ }, JSON.stringify(bad));
  }
});

t.test('a mailbox USER or HOST with a line break or an angle bracket is refused', async (t) => {
  for (const [user, host] of [
    ['alice\r\n', 'example.test'],
    ['alice', 'example.test\r\nRCPT TO:<x@y>'],
    ['al>ice', 'example.test'],
    ['alice', 'exa\x00mple.test'],
  ] as const) {
    t.throws(() => impMessageToMime(message('ann@sender.test', user, host), 'message[0]'), { code: 'ERR_IMP_MESSAGE', path: /^message\[0\]\.command\.mailbox/ }, JSON.stringify([user, host]));
    t.throws(() => mailboxAddress(proplist({ USER: user, HOST: host }), 'm'), ImpError);
  }
  t.equal(mailboxAddress(proplist({ USER: 'Dave Crocker', HOST: 'rand-unix' }), 'm'), 'Dave Crocker@rand-unix', 'spaces are not refused');
});
