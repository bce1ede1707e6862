import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Store } from '../../src/store/store.js';

/**
 * A store at DIR/NAME.db holding one accepted message (`qid`, received at `receivedAt`,
 * alice@sender.test to bob@example.test from 198.51.100.2, 900 octets, its spool file
 * nowhere) and a config file DIR/NAME.yaml naming it, for the CLI commands a test runs
 * against it once it has closed the store.
 */
export function storeWithMessage(dir: string, name: string, m: { qid: string; receivedAt: number }): { store: Store; configFile: string } {
  const db = join(dir, `${name}.db`);
  const configFile = join(dir, `${name}.yaml`);
  writeFileSync(configFile, `store: { path: ${JSON.stringify(db)} }\nspool: { dir: ${JSON.stringify(join(dir, 'spool'))} }\n`);
  const store = Store.open(db);
  store.queue.insertMessage({ qid: m.qid, receivedAt: m.receivedAt, envelopeFrom: 'alice@sender.test', size: 900, spoolPath: `/nonexistent/${m.qid}`, spoolOffset: 0, sha256: '0'.repeat(64), clientAddress: '198.51.100.2', recipients: ['bob@example.test'] });
  return { store, configFile };
}
