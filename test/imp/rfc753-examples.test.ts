// RFC 753 Example 1 and the four views of Example 2, typed in from the RFC's
// notation (test/imp/fixtures/*.txt), must encode to the bytes written out by
// hand in the annotated listings (*.hex) and decode back to the same structure.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  decodeBag,
  decodeElement,
  elementsEqual,
  encodeBag,
  encodeElement,
  parseNotation,
  printNotation,
  proplistGet,
  readArguments,
  readCommandError,
  textValue,
  type Element,
} from '../../src/imp/index.js';
import { hexListing } from './fixtures/hex-listing.js';

const dir = join(dirname(fileURLToPath(import.meta.url)), 'fixtures');
const notation = (name: string) => readFileSync(join(dir, `rfc753-${name}.txt`), 'utf8');
const listing = (name: string) => hexListing(readFileSync(join(dir, `rfc753-${name}.hex`), 'utf8'));
const bagOf = (message: Element): Buffer => encodeElement({ type: 'list', items: [message] });

const VIEWS = ['example1', 'example2-view2', 'example2-view3', 'example2-view4'];

for (const name of VIEWS) {
  t.test(`${name}: notation -> bytes -> structure`, async (t) => {
    const parsed = parseNotation(notation(name));
    const expected = listing(name);
    const bytes = encodeElement(parsed);
    t.same(bytes.toString('hex'), expected.toString('hex'), 'encodes to the listed bytes');
    const decoded = decodeElement(expected);
    t.ok(elementsEqual(decoded, parsed), 'the listed bytes decode to the notation structure');
    t.ok(elementsEqual(parseNotation(printNotation(decoded)), parsed), 'printing and re-parsing keeps the structure');
    // as a one-message bag, the same bytes sit after the bag's LIST header
    const [msg] = decodeBag(bagOf(parsed));
    t.same(encodeBag([msg!]), bagOf(parsed), 'the message object re-encodes the same bytes');
  });
}

t.test('the listings\' comments are checked against their octets when they load', async (t) => {
  const text = readFileSync(join(dir, 'rfc753-example1.hex'), 'utf8');
  t.ok(listing('example1').length > 0);
  const tampered: [string, string][] = [
    ['LIST count 424 (0x0004..0x01ab), 3 items', 'LIST count 425 (0x0004..0x01ab), 3 items'],
    ['LIST count 424 (0x0004..0x01ab), 3 items', 'LIST count 424 (0x0004..0x01ac), 3 items'],
    ['LIST count 424 (0x0004..0x01ab), 3 items', 'LIST count 424 (0x0004..0x01ab), 2 items'],
    ['pair: name count 4 "HOST", value count 13', 'pair: name count 4 "HOST", value count 12'],
    ['TEXT count 7 "DELIVER"', 'TEXT count 8 "DELIVER"'],
  ];
  for (const [from, to] of tampered) {
    t.ok(text.includes(from));
    t.throws(() => hexListing(text.replace(from, to)), /listing comment disagrees with its octets/, to);
  }
});

t.test('Example 1 reads back as a DELIVER with its document', async (t) => {
  const [msg] = decodeBag(bagOf(parseNotation(notation('example1'))));
  t.same(msg!.tid, { tn: 37, ihn: 167772404 });
  t.same(msg!.command.stamp, [167772404]);
  t.equal(msg!.command.type, 1);
  t.same(readArguments(msg!.command), { operation: 'DELIVER', options: ['REGULAR'] });
  t.equal(readCommandError(msg!.command), undefined);
  const mailbox = msg!.command.mailbox;
  t.same(proplistGet(mailbox, 'ia'), { type: 'integer', value: 167772359 });
  t.equal(textValue(proplistGet(mailbox, 'HOST')!), 'rand-unix');
  t.equal(textValue(proplistGet(msg!.document!.header, 'SUBJECT')!), 'Meeting Thursday');
  t.equal(textValue(msg!.document!.body.items[0]!), 'Dave:\r\n\r\nPlease mark your calendar for our meeting Thursday at 3 pm.\r\n\r\n--jon.');
});

t.test('Example 2 view 2 differs from view 1 only in the stamp', async (t) => {
  const [v1] = decodeBag(bagOf(parseNotation(notation('example1'))));
  const [v2] = decodeBag(bagOf(parseNotation(notation('example2-view2'))));
  t.same(v2!.command.stamp, [167772404, 167772246]);
  t.same(encodeBag([{ ...v1!, command: { ...v1!.command, stamp: [167772404, 167772246] } }]), encodeBag([v2!]));
});

t.test('Example 2 views 3 and 4: ACKNOWLEDGE with no document', async (t) => {
  for (const [view, stamp] of [
    ['example2-view3', [167772359]],
    ['example2-view4', [167772359, 167772246]],
  ] as const) {
    const [msg] = decodeBag(bagOf(parseNotation(notation(view))));
    t.same(msg!.tid, { tn: 1993, ihn: 167772359 });
    t.same(msg!.command.stamp, stamp);
    t.equal(msg!.document, undefined);
    t.same(readCommandError(msg!.command), { errorClass: 0, errorString: 'No Errors' });
    t.same(readArguments(msg!.command), {
      operation: 'ACKNOWLEDGE',
      tid: { tn: 37, ihn: 167772404 },
      trail: [167772404, 167772246, 167772359],
      answer: true,
      reasons: ['OK'],
      howDelivered: ['ACCEPT'],
    });
  }
});

t.test('Example 1 sent to two mailboxes shares the document in one bag', async (t) => {
  const [m1] = decodeBag(bagOf(parseNotation(notation('example1'))));
  const m2 = { ...m1!, tid: { tn: 38, ihn: 167772404 } };
  const bytes = encodeBag([m1!, m2]);
  const decoded = decodeBag(bytes);
  t.same(decoded[1]!.shared, { command: m1!.tid, header: m1!.tid, body: m1!.tid });
  // the second message is just its tid and three references: 6 + 14 + 3 * (6 + 3 + 14) + 6 octets
  t.equal(bytes.length - 6 - (listing('example1').length), 6 + 14 + 23 + 6 + 2 * 23);
});
