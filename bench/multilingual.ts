// multipart/multilingual rewrite cost: 20 KB messages with 2, 5 and 20 language parts,
// each rewritten for three recipients' languages (`select` mode, the parse included),
// beside mailparser's simpleParser of the same message in the same run.
// Target: under 1 ms per message for 5 languages.
import { simpleParser } from 'mailparser';
import { parseLanguagePreferences } from '../src/mime/language-range.js';
import { planLanguageCopies, type RecipientLanguages } from '../src/mime/multilingual.js';
import { parseMimeTree } from '../src/mime/tree.js';

const LANGS = ['en', 'es', 'de', 'fr', 'it', 'pt-BR', 'nl', 'sv', 'da', 'fi', 'pl', 'cs', 'hu', 'ro', 'el', 'tr', 'ja', 'zh-Hant', 'ko', 'ar'];

/** A multilingual message of about `bytes` octets with `n` language parts. */
function message(n: number, bytes: number): Buffer {
  const perPart = Math.floor(bytes / (n + 1));
  const line = 'The quick brown fox jumps over the lazy dog, in every language of the message. ';
  const text = (size: number) => {
    const lines: string[] = [];
    let len = 0;
    while (len < size) {
      lines.push(line.trim());
      len += line.length + 1;
    }
    return lines.join('\r\n');
  };
  const out = [
    'Received: from upstream.example.test by mx.example.test with ESMTPS id 4ABC; Mon, 30 Nov 2026 08:00:00 +0000',
    'From: Sender <sender@example.test>',
    'To: many@example.test',
    'Subject: A message in many languages',
    'Date: Mon, 30 Nov 2026 08:00:00 +0000',
    'Message-ID: <bench@example.test>',
    'MIME-Version: 1.0',
    'Content-Type: multipart/multilingual; boundary="==ml=="',
    '',
    '--==ml==',
    'Content-Type: text/plain; charset=utf-8',
    '',
    text(perPart),
  ];
  for (let i = 0; i < n; i++) {
    out.push('--==ml==', 'Content-Type: message/rfc822', `Content-Language: ${LANGS[i]}`, `Content-Translation-Type: ${i === 0 ? 'original' : 'human'}`, '');
    out.push(`Subject: Subject in ${LANGS[i]}`, 'Content-Type: text/plain; charset=utf-8', 'Content-Transfer-Encoding: 7bit', '', text(perPart));
  }
  out.push('--==ml==--', '');
  return Buffer.from(out.join('\r\n'));
}

const recipients: RecipientLanguages[] = [
  { rcpt: 'a@example.test', preferences: parseLanguagePreferences('es-MX, es;q=0.8, en;q=0.3') },
  { rcpt: 'b@example.test', preferences: parseLanguagePreferences('en-GB') },
  { rcpt: 'c@example.test', preferences: parseLanguagePreferences('de-CH-1996, fr;q=0.5') },
];

async function perMessageMs(fn: () => unknown, minSeconds = 0.5): Promise<number> {
  for (let i = 0; i < 50; i++) await fn(); // warm-up
  const times: number[] = [];
  for (let w = 0; w < 5; w++) {
    (globalThis as { gc?: () => void }).gc?.();
    let n = 0;
    const start = process.hrtime.bigint();
    let elapsed = 0;
    while (elapsed < minSeconds / 5) {
      await fn();
      n++;
      elapsed = Number(process.hrtime.bigint() - start) / 1e9;
    }
    times.push((elapsed * 1000) / n);
  }
  return times.sort((a, b) => a - b)[2]!;
}

process.stdout.write('languages  size      rewrite (3 rcpts)   mailparser parse   ratio\n');
for (const n of [2, 5, 20]) {
  const bytes = message(n, 20_000);
  const rewrite = await perMessageMs(() => planLanguageCopies(parseMimeTree(bytes), recipients, { mode: 'select' }));
  const parse = await perMessageMs(() => simpleParser(bytes));
  process.stdout.write(
    `${String(n).padStart(9)}  ${String(bytes.length).padStart(6)} B  ${rewrite.toFixed(3).padStart(10)} ms/msg   ${parse.toFixed(3).padStart(10)} ms/msg   ${(rewrite / parse).toFixed(2)}x\n`,
  );
}
