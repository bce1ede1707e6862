import { simpleParser } from 'mailparser';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { cli } from './helpers/cli.js';

const example = fileURLToPath(new URL('./fixtures/multilingual/rfc8255-8.2.eml', import.meta.url));

t.test('lang parts lists index, tags, translation type and subject', async (t) => {
  const r = await cli(['lang', 'parts', example]);
  t.equal(r.code, 0, r.stderr);
  t.equal(
    r.stdout.toString(),
    [
      'PART\tLANGUAGE\tTRANSLATION\tSUBJECT',
      '1\ten\toriginal\tExample of a message in Spanish and English',
      '2\tes-ES\thuman\t=?UTF-8?Q?Ejemplo_pr=C3=A1ctico_de_mensaje_?= =?UTF-8?Q?en_espa=C3=B1ol_e_ingl=C3=A9s?=',
      '3\tzxx\t-\t-',
      '',
    ].join('\n'),
  );
  const json = await cli(['lang', 'parts', '--json', example]);
  t.same(
    (JSON.parse(json.stdout.toString()) as { index: number; independent: boolean }[]).map((p) => [p.index, p.independent]),
    [
      [1, false],
      [2, false],
      [3, true],
    ],
  );
});

t.test('lang select writes the delivered message to stdout and the decision to stderr', async (t) => {
  const r = await cli(['lang', 'select', '--lang', 'es-MX, en;q=0.5', example]);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stderr, /^part 2: es-ES; translation human; range "es-mx" truncated to "es" matches part 2/);
  const parsed = await simpleParser(r.stdout);
  t.equal(parsed.subject, 'Ejemplo práctico de mensaje en español e inglés');
  t.equal(parsed.text?.trim(), 'Hola, el contenido de este mensaje esta disponible en su idioma.');

  const fr = await cli(['lang', 'select', '--lang', 'fr', example]);
  t.match(fr.stderr, /^part 3: zxx; translation unspecified; no part matches the preferences: the language-independent part 3/);

  const reorder = await cli(['lang', 'select', '--mode', 'reorder', '--lang', 'es'], { stdin: await import('node:fs').then((f) => f.readFileSync(example)) });
  t.equal(reorder.code, 0, reorder.stderr);
  t.ok(reorder.stdout.indexOf('Content-Language: es-ES') < reorder.stdout.indexOf('Content-Language: en\r\n'), 'es-ES part first');
});

t.test('lang select passes a message that is not multilingual through unchanged', async (t) => {
  const plain = 'From: a@example.test\r\nSubject: hi\r\n\r\nhello\r\n';
  const r = await cli(['lang', 'select', '--lang', 'en'], { stdin: plain });
  t.equal(r.code, 0);
  t.equal(r.stdout.toString(), plain);
  t.match(r.stderr, /^unchanged: not multipart\/multilingual/);
  const parts = await cli(['lang', 'parts'], { stdin: plain });
  t.equal(parts.code, 1);
  t.match(parts.stderr, /^mailbag lang parts: not rewritable: not multipart\/multilingual/);
});

t.test('bad --lang and --mode are usage errors', async (t) => {
  for (const argv of [['--lang', 'en;q=5'], ['--lang', 'en', '--mode', 'sideways'], []]) {
    const r = await cli(['lang', 'select', ...argv, example]);
    t.equal(r.code, 2, argv.join(' '));
    t.match(r.stderr, /^mailbag lang select: /);
  }
});
