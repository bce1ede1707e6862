// A portion shared by many messages of a bag is checked for ENCRYPT (encrypted portions
// cannot be shared) once, not once per message that shares it: a 1 MB bag of 10,000
// messages sharing a body of 65,535 elements made the walk 655 million steps long,
// all of it on the event loop that serves every other connection.
import t from 'tap';
import type { Element } from '../../src/imp/types.js';
import { deliverCommand, encodeBag, proplist, textElement, type ImpMessage } from '../../src/imp/index.js';
import { ElementDecoder } from '../../src/imp/element-decode.js';
import { containsEncrypt } from '../../src/imp/encrypt.js';

t.test('each shared portion is walked for ENCRYPT once per bag', async (t) => {
  let walks = 0;
  const { readBagEntries, readBagBytes } = await t.mockImport<typeof import('../../src/imp/bag-decode.js')>('../../src/imp/bag-decode.ts', {
    '../../src/imp/encrypt.ts': {
      containsEncrypt: (el: Element) => {
        walks++;
        return containsEncrypt(el);
      },
    },
  });
  const body = { type: 'list' as const, items: Array.from({ length: 100 }, () => textElement('x')) };
  const header = proplist({ SUBJECT: 's' });
  const command = deliverCommand({ mailbox: proplist({ HOST: 'example.test', USER: 'alice' }), stamp: [5] });
  const messages = Array.from({ length: 1000 }, (_, i): ImpMessage => ({ tid: { tn: i, ihn: 5 }, command, document: { header, body } }));
  const bag = encodeBag(messages);
  const entries = readBagEntries(new ElementDecoder(bag, 64));
  t.equal(entries.length, 1000);
  t.ok(entries.every((e) => e.message?.document?.body.items.length === 100), 'every message has the shared body');
  // three command parts, a header and a body: each walked once
  t.ok(walks <= 5, `${walks} walks for 999 messages sharing the first one's portions`);
  walks = 0;
  t.equal(readBagBytes(new ElementDecoder(bag, 64)).length, 1000);
  t.ok(walks <= 5, `${walks} walks (strict decoder)`);
});
