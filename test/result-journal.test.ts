// The results journal file on its own: allocated at start so that a stop's write needs no
// new blocks (a file system that refuses to grow a file stands in for the full disk),
// checksummed records, an end mark, and what does not fit.
import t from 'tap';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { ResultJournal, nodeJournalFs, type JournalFs, type JournalledRound } from '../src/delivery/result-journal.js';
import { tempDir } from './helpers/gateway.js';

const round = (qid: string, rcpt = 'bob@example.test'): JournalledRound => ({
  qid,
  claimed: [{ rcpt, attempts: 0 }],
  attempts: [{ qid, nexthop: 'smtp://127.0.0.1:9', startedAt: 1, durationMs: 2, reply: '250 2.0.0 ok', outcome: 'delivered', recipients: [{ rcpt, state: 'delivered', reply: '250 2.0.0 ok' }] }],
});

/** The disk fills up: from then on a write that would grow a file fails with ENOSPC. */
function fillingDisk(): { fs: JournalFs; full: boolean } {
  const disk = {
    full: false,
    fs: {
      ...nodeJournalFs,
      writeSync(fd: number, buffer: Buffer, offset: number, length: number, position: number): number {
        if (disk.full && position + length > fs.fstatSync(fd).size) throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
        return fs.writeSync(fd, buffer, offset, length, position);
      },
    } satisfies JournalFs,
  };
  return disk;
}

t.test('allocated at start: the stop writes in place and needs no new blocks', async (t) => {
  const { dir, cleanup } = tempDir('journal');
  t.teardown(cleanup);
  const path = join(dir, 'results.journal');
  const disk = fillingDisk();
  const j = ResultJournal.open(path, 64 * 1024, disk.fs);
  t.same(j.read().rounds, [], 'a new journal is empty');
  j.prepare(false);
  const st = fs.statSync(path);
  t.equal(st.size, 64 * 1024, 'the file has its full size');
  t.ok(st.blocks * 512 >= 64 * 1024, 'with its blocks allocated (not a sparse file)');
  disk.full = true;
  t.same(j.write([round('Q1'), round('Q2')]), { written: 2, left: [] }, 'written on the full disk');
  j.close();
  t.equal(fs.statSync(path).size, 64 * 1024, 'the file did not grow');
  const again = ResultJournal.open(path, 64 * 1024);
  t.same(again.read(), { rounds: [round('Q1'), round('Q2')] }, 'read back at the next start');
  again.close();
});

t.test('without the allocation the same write fails on the full disk', async (t) => {
  const { dir, cleanup } = tempDir('journal');
  t.teardown(cleanup);
  const disk = fillingDisk();
  const j = ResultJournal.open(join(dir, 'results.journal'), 64 * 1024, disk.fs);
  disk.full = true;
  t.throws(() => j.write([round('Q1')]), { code: 'ENOSPC' }, 'so the stand-in for a full disk is real');
  j.close();
});

t.test('a damaged record: the records before it are read, the damage is reported', async (t) => {
  const { dir, cleanup } = tempDir('journal');
  t.teardown(cleanup);
  const path = join(dir, 'results.journal');
  const j = ResultJournal.open(path, 4096);
  j.prepare(false);
  j.write([round('Q1'), round('Q2'), round('Q3')]);
  j.close();
  const bytes = fs.readFileSync(path);
  const second = bytes.indexOf('"qid":"Q2"');
  bytes[second + 8] = 'X'.charCodeAt(0); // Q2 -> QX: its checksum no longer matches
  fs.writeFileSync(path, bytes);
  const again = ResultJournal.open(path, 4096);
  const read = again.read();
  t.same(read.rounds, [round('Q1')], 'the record before the damage');
  t.ok(read.damagedAt !== undefined && read.damagedAt > 0 && read.damagedAt < second, 'the damaged record named by its offset');
  again.close();
});

t.test('what does not fit is returned; a shorter later write ends at its end mark', async (t) => {
  const { dir, cleanup } = tempDir('journal');
  t.teardown(cleanup);
  const path = join(dir, 'results.journal');
  const one = Buffer.byteLength(JSON.stringify(round('Q1'))) + 16;
  const j = ResultJournal.open(path, 2 * one + 4);
  j.prepare(false);
  const { written, left } = j.write([round('Q1'), round('Q2'), round('Q3')]);
  t.equal(written, 2);
  t.same(left, [round('Q3')], 'the third does not fit');
  t.same(j.write([round('Q4')]), { written: 1, left: [] });
  t.same(j.read().rounds, [round('Q4')], 'the older second record after the end mark is not read');
  j.clear();
  t.same(j.read().rounds, [], 'cleared');
  t.ok(fs.readFileSync(path).equals(Buffer.alloc(2 * one + 4)), 'all zeros');
  j.close();
});
