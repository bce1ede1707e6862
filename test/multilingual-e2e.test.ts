import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { simpleParser } from 'mailparser';
import nodemailer from 'nodemailer';
import t from 'tap';
import { startGateway } from '../src/gateway/gateway.js';
import { Store } from '../src/store/store.js';
import { maildirFiles, startSink, tempDir, testConfig, waitFor } from './helpers/gateway.js';

// RFC 8255 example 8.2 plus a German part: three recipients, three languages.
const MESSAGE = Buffer.from(
  readFileSync(new URL('./fixtures/multilingual/rfc8255-8.2.eml', import.meta.url), 'latin1').replace(
    '--01189998819991197253\r\nContent-Type: message/rfc822; name="Icon"',
    [
      '--01189998819991197253',
      'Content-Type: message/rfc822',
      'Content-Language: de',
      'Content-Translation-Type: automated',
      '',
      'Subject: Beispiel einer Nachricht',
      'Content-Type: text/plain; charset="US-ASCII"',
      '',
      'Hallo, dieser Inhalt ist in Ihrer Sprache.',
      '',
      '--01189998819991197253',
      'Content-Type: message/rfc822; name="Icon"',
    ].join('\r\n'),
  ),
  'latin1',
);

const expected: Record<string, { subject: string; text: RegExp; lang: string }> = {
  es: { subject: 'Ejemplo práctico de mensaje en español e inglés', text: /^Hola, el contenido/, lang: 'es-ES' },
  'en-GB': { subject: 'Example of a message in Spanish and English', text: /^Hello, this message content/, lang: 'en' },
  de: { subject: 'Beispiel einer Nachricht', text: /^Hallo, dieser Inhalt/, lang: 'de' },
};

for (const nexthop of ['smtp', 'maildir'] as const) {
  t.test(`one multilingual message, three recipients, three copies at a ${nexthop} next hop`, async (t) => {
    const { dir, cleanup } = tempDir(`ml-e2e-${nexthop}`);
    const sink = await startSink();
    const mailboxes = join(dir, 'mailboxes');
    const config = testConfig(dir, {
      routes: [{ domain: 'example.test', nexthop: nexthop === 'smtp' ? `smtp://127.0.0.1:${sink.port}` : `maildir:${mailboxes}` }],
      multilingual: { mode: 'select', verifyDkim: false },
    });
    {
      // preferences are set before start, as an operator would with `mailbag users set`
      const store = Store.open(config.store.path);
      store.users.set('ana@example.test', 'es');
      store.users.set('ben@example.test', 'en-gb');
      store.users.set('dirk@example.test', 'de-ch, en;q=0.1');
      store.close();
    }
    const gw = await startGateway(config, { pollMs: 50 });
    t.teardown(async () => {
      await gw.stop();
      await sink.close();
      cleanup();
    });
    const rcpts = { es: 'ana@example.test', 'en-GB': 'ben@example.test', de: 'dirk@example.test' };
    const client = nodemailer.createTransport({ host: '127.0.0.1', port: gw.smtpAddress().port, secure: false, ignoreTLS: true });
    const info = await client.sendMail({ envelope: { from: 'nik@example.com', to: Object.values(rcpts) }, raw: MESSAGE });
    client.close();
    const qid = /queued as ([0-9A-Z]+)/.exec(info.response)![1]!;

    const received = new Map<string, Buffer>();
    if (nexthop === 'smtp') {
      await waitFor(() => sink.messages.length === 3, 10_000, 'three copies at the sink');
      for (const m of sink.messages) {
        t.equal(m.to.length, 1, 'one recipient per copy');
        received.set(m.to[0]!, m.bytes);
      }
    } else {
      for (const addr of Object.values(rcpts)) {
        const local = addr.split('@')[0]!;
        const [file] = await waitFor(() => (maildirFiles(mailboxes, 'example.test', local).length ? maildirFiles(mailboxes, 'example.test', local) : undefined), 10_000, `Maildir of ${addr}`);
        received.set(addr, file!.bytes);
      }
    }
    for (const [pref, addr] of Object.entries(rcpts)) {
      const bytes = received.get(addr);
      if (!bytes) {
        t.fail(`nothing for ${addr}`);
        continue;
      }
      const parsed = await simpleParser(bytes);
      t.equal(parsed.subject, expected[pref]!.subject, `${addr} (${pref}): own Subject`);
      t.match(parsed.text?.trim(), expected[pref]!.text, `${addr}: own body`);
      t.equal(parsed.headers.get('content-language'), expected[pref]!.lang);
      t.equal(parsed.from?.value[0]?.address, 'Nik@example.com', 'top-level From kept');
      t.match(bytes.toString('latin1'), new RegExp(`^Received: from .*\\r\\n\\tby mx\\.test\\.invalid \\(mailbag\\) with ESMTP id ${qid}`), 'mailbag\'s Received kept');
    }
    const store = Store.open(config.store.path);
    t.teardown(() => store.close());
    t.same(
      store.multilingual.choices(qid).map((c) => [c.rcpt, c.tags, c.rule]),
      [
        ['ana@example.test', 'es-ES', 'filter'],
        ['ben@example.test', 'en', 'lookup'],
        ['dirk@example.test', 'de', 'lookup'],
      ],
      'each decision recorded with the original qid',
    );
    await waitFor(() => store.queue.message(qid)?.state === 'done', 10_000, 'message finished');
  });
}

t.test('a language part naming another sender: delivered without it, counted in the metrics', async (t) => {
  const { dir, cleanup } = tempDir('ml-e2e-spoof');
  const mailboxes = join(dir, 'mailboxes');
  const config = testConfig(dir, {
    routes: [{ domain: 'example.test', nexthop: `maildir:${mailboxes}` }],
    multilingual: { mode: 'select', defaultLanguages: 'es', verifyDkim: false },
    admin: { enabled: true, listen: { host: '127.0.0.1', port: 0 } },
  });
  const gw = await startGateway(config, { pollMs: 50 });
  t.teardown(async () => {
    await gw.stop();
    cleanup();
  });
  const spoof = Buffer.from(MESSAGE.toString('latin1').replace('Subject: =?UTF-8?Q?Ejemplo', 'From: Bank <security@bank.example>\r\nSubject: =?UTF-8?Q?Ejemplo'), 'latin1');
  const client = nodemailer.createTransport({ host: '127.0.0.1', port: gw.smtpAddress().port, secure: false, ignoreTLS: true });
  await client.sendMail({ envelope: { from: 'nik@example.com', to: ['eva@example.test'] }, raw: spoof });
  client.close();
  const [file] = await waitFor(() => (maildirFiles(mailboxes, 'example.test', 'eva').length ? maildirFiles(mailboxes, 'example.test', 'eva') : undefined), 10_000, 'delivery');
  const text = file!.bytes.toString('latin1');
  t.match(text, /Subject: =\?UTF-8\?Q\?Ejemplo/, 'the Spanish part');
  t.notMatch(text, /bank\.example/, 'without its From');
  const metrics = await (await fetch(`http://127.0.0.1:${gw.adminAddress()!.port}/metrics`)).text();
  t.match(metrics, /^mailbag_multilingual_from_mismatch_total 1$/m);
});
