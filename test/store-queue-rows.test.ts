import t, { type Test } from 'tap';
import { MESSAGE_COLUMNS, RECIPIENT_COLUMNS } from '../src/store/queue-rows.js';
import { openTempStore } from './helpers/temp-store.js';

const open = (t: Test) => openTempStore(t, 'store-queue-rows');

t.test('the column lists of the raw reads name every column of messages and recipients, in table order', async (t) => {
  const store = open(t);
  const columns = (table: string) => store.db.prepare('SELECT name FROM pragma_table_info(?) ORDER BY cid').pluck().all(table);
  t.strictSame([...MESSAGE_COLUMNS], columns('messages'), 'a migration that adds a column to messages adds it to MESSAGE_COLUMNS');
  t.strictSame([...RECIPIENT_COLUMNS], columns('recipients'), 'a migration that adds a column to recipients adds it to RECIPIENT_COLUMNS');
});

t.test('rows read raw and built by the queue store equal the rows SQLite gives by name, key order included', async (t) => {
  const store = open(t);
  store.queue.insertMessage({
    qid: 'Q1', receivedAt: 1000, envelopeFrom: 'a@b', size: 10, spoolPath: '/x', spoolOffset: 7, sha256: 'f'.repeat(64),
    clientAddress: '192.0.2.1', clientHostname: 'c.example', helo: 'helo.example', authUser: 'u',
    recipients: ['c@d', 'B@d', 'ü@d'],
    params: { bodyType: '8bitmime', smtpUtf8: true, declaredSize: 9, dsnRet: 'HDRS', dsnEnvid: 'id+1' },
    recipientParams: { 'c@d': { notify: ['SUCCESS', 'FAILURE'], orcpt: 'rfc822;C@D' } },
  });
  store.queue.hold('Q1', 'checked', 2000);
  store.queue.releaseHold('Q1', 3000);
  store.queue.recordCopies('Q1', [{ rcpt: 'B@d', copy: { path: '/x.1', size: 11, offset: 3, sha256: 'e'.repeat(64) } }]);
  const byName = {
    message: store.db.prepare('SELECT * FROM messages WHERE qid = ?').get('Q1'),
    recipients: store.db.prepare('SELECT * FROM recipients WHERE qid = ? ORDER BY rcpt').all('Q1'),
  };
  const message = store.queue.message('Q1');
  t.strictSame(message, byName.message);
  t.strictSame(Object.keys(message!), Object.keys(byName.message as object), 'same key order (JSON output of the CLI)');
  t.strictSame(store.queue.recipients('Q1'), byName.recipients);
  const [claimed] = store.queue.claimMany(['Q1'], 5000, 9000);
  t.strictSame(claimed?.message, byName.message, 'a claim reads the message row');
  t.strictSame(claimed?.recipients, byName.recipients, 'and the due recipients (as read before their lease)');
  t.equal(store.queue.finishIfDone('Q1', 6000), undefined, 'not finished while recipients are open');
});

t.test('a finished message comes back as its qid and spool files; its row says done', async (t) => {
  const store = open(t);
  store.queue.insertMessage({ qid: 'Q2', receivedAt: 1, envelopeFrom: '', size: 1, spoolPath: '/y', spoolOffset: 0, sha256: '0'.repeat(64), recipients: ['g@h'] });
  store.queue.markDeleted('Q2', 10);
  t.strictSame(store.queue.finishIfDone('Q2', 20), { qid: 'Q2', spoolFiles: ['/y'] });
  t.match(store.queue.message('Q2'), { state: 'done', finished_at: 20 });
  t.equal(store.queue.finishIfDone('Q2', 30), undefined, 'finished once');
});
