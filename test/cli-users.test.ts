import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { parseCsv } from '../src/cli/users/csv.js';
import { cli } from './helpers/cli.js';

const dir = mkdtempSync(join(tmpdir(), 'mailbag-users-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const cfg = join(dir, 'mailbag.yaml');
writeFileSync(cfg, `store: { path: ${JSON.stringify(join(dir, 'store.db'))} }\nspool: { dir: ${JSON.stringify(join(dir, 'spool'))} }\n`);
const run = (...argv: string[]) => cli([...argv, '--config', cfg]);

t.test('set, get, list, delete; addresses compared in one normal form', async (t) => {
  const set = await run('users', 'set', 'Alice@Bücher.Example', '--lang', 'en;q=0.3, es-MX, es;q=0.8');
  t.equal(set.code, 0, set.stderr);
  t.equal(set.stdout.toString(), 'alice@xn--bcher-kva.example\tes-mx, es;q=0.8, en;q=0.3\n', 'canonical: lower case, A-label, most preferred first');
  const get = await run('users', 'get', 'alice@xn--bcher-kva.example');
  t.equal(get.stdout.toString(), 'alice@xn--bcher-kva.example\tes-mx, es;q=0.8, en;q=0.3\n');
  await run('users', 'set', 'bob@example.test', '--lang', 'de, *;q=0');
  const list = await run('users', 'list', '--json');
  t.same(
    (JSON.parse(list.stdout.toString()) as { address: string; languages: string }[]).map((r) => [r.address, r.languages]),
    [
      ['alice@xn--bcher-kva.example', 'es-mx, es;q=0.8, en;q=0.3'],
      ['bob@example.test', 'de, *;q=0'],
    ],
  );
  t.equal((await run('users', 'delete', 'BOB@example.test')).code, 0);
  const gone = await run('users', 'get', 'bob@example.test');
  t.equal(gone.code, 1);
  t.equal(gone.stderr, 'mailbag users get: no language preferences stored for bob@example.test\n');
  t.equal((await run('users', 'delete', 'bob@example.test')).code, 1, 'deleting what is not there fails');
});

t.test('bad addresses and lists are usage errors', async (t) => {
  for (const [argv, msg] of [
    [['users', 'set', 'nobody', '--lang', 'en'], /'nobody' is not an address/],
    [['users', 'set', 'a@example.test', '--lang', 'en;q=7'], /--lang: bad quality value/],
    [['users', 'set', 'a@example.test'], /--lang is required/],
  ] as const) {
    const r = await run(...argv);
    t.equal(r.code, 2, argv.join(' '));
    t.match(r.stderr, msg);
  }
});

t.test('import: quoted lists, a header, all or nothing with the bad line named', async (t) => {
  const good = join(dir, 'good.csv');
  writeFileSync(good, 'address,languages\r\ncarol@example.test,"fr-CA, fr;q=0.9"\r\ndave@example.test,ja\r\n');
  const ok = await run('users', 'import', good);
  t.equal(ok.code, 0, ok.stderr);
  t.match(ok.stdout.toString(), /imported 2 address/);
  t.equal((await run('users', 'get', 'carol@example.test')).stdout.toString(), 'carol@example.test\tfr-ca, fr;q=0.9\n');

  const bad = join(dir, 'bad.csv');
  writeFileSync(bad, 'erin@example.test,en\nfrank@example.test,"en;q=9"\ngrace@example.test,de\n');
  const r = await run('users', 'import', bad);
  t.equal(r.code, 1);
  t.match(r.stderr, /bad\.csv: line 2: bad quality value .*; nothing imported/);
  t.equal((await run('users', 'get', 'erin@example.test')).code, 1, 'the good first row was not imported either');

  const dup = join(dir, 'dup.csv');
  writeFileSync(dup, 'h@example.test,en\nH@EXAMPLE.test,de\n');
  t.match((await run('users', 'import', dup)).stderr, /line 2: h@example\.test already appears on line 1/);
  const fields = join(dir, 'fields.csv');
  writeFileSync(fields, 'i@example.test\n');
  t.match((await run('users', 'import', fields)).stderr, /line 1: expected 2 fields/);
  t.match((await run('users', 'import', join(dir, 'missing.csv'))).stderr, /cannot read .*missing\.csv: ENOENT/);
});

t.test('CSV parser: RFC 4180 quoting and line numbers', async (t) => {
  t.same(parseCsv('a,"b, ""c"""\n\nd,"e\nf"\r\ng,h'), [
    { line: 1, fields: ['a', 'b, "c"'] },
    { line: 3, fields: ['d', 'e\nf'] },
    { line: 5, fields: ['g', 'h'] },
  ]);
  t.throws(() => parseCsv('a,"b\n'), { message: 'line 1: a quoted field is not closed' });
  t.throws(() => parseCsv('a,b"c\n'), { message: 'line 1: a quote inside an unquoted field' });
  t.throws(() => parseCsv('x\na,"b"c\n'), { message: 'line 2: text after a closing quote' });
});
