// `mailbag lang` on hostile messages: what a sender wrote (tags, Subject, From) reaches the
// operator's terminal as text on one line, never as a control sequence or an extra column.
import t from 'tap';
import { cli } from './helpers/cli.js';

const hostile = Buffer.from(
  [
    'From: a@example.test',
    'Subject: top',
    'Content-Type: multipart/multilingual; boundary=b1',
    '',
    '--b1',
    '',
    'preface',
    '--b1',
    'Content-Type: message/rfc822',
    'Content-Language: en\x1b[31m',
    'Content-Translation-Type: human\x1b[2J',
    '',
    'From: "x\x1b]0;title\x07" <b@example.test>',
    'Subject: hi\tthere \x1b]0;pwned\x07 end',
    '',
    'body',
    '--b1--',
    '',
  ].join('\r\n'),
  'latin1',
);
const ESC = /[\x00-\x08\x0b-\x1f\x7f]/;

t.test('lang parts: control characters of the message are shown escaped, one row per part, four columns', async (t) => {
  const r = await cli(['lang', 'parts'], { stdin: hostile });
  t.equal(r.code, 0, r.stderr);
  const out = r.stdout.toString('latin1');
  t.notMatch(out, ESC, 'no control sequence on stdout');
  const rows = out.trimEnd().split('\n');
  t.equal(rows.length, 2);
  t.same(rows[1]!.split('\t'), ['1', 'en\\x1b[31m', 'human\\x1b[2j', 'hi\\tthere \\x1b]0;pwned\\x07 end']);
});

t.test('lang select: the decision on stderr carries no control sequence', async (t) => {
  const r = await cli(['lang', 'select', '--lang', 'de'], { stdin: hostile });
  t.equal(r.code, 0, r.stderr);
  t.notMatch(r.stderr, ESC, JSON.stringify(r.stderr));
  t.match(r.stderr, /^part 1: en\\x1b\[31m; translation human\\x1b\[2j; /);
  t.match(r.stderr, /\nwarning: part 1 has a From \("x\\x1b\]0;title\\x07" <b@example\.test>\)/);
  t.equal(r.stderr.trimEnd().split('\n').length, 2, 'two lines: the decision and the From warning');
});
