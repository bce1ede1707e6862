// `mailbag report --html FILE` opened in headless Chromium (Debian's `chromium`, which
// .ci/run installs): every chart drew on its canvas, the page logged no error, and it asked
// the network for nothing. Skips, saying why, only where Chromium is missing or will not start.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import t from 'tap';
import { chromium, type Browser } from 'playwright-core';
import { Store } from '../src/store/store.js';
import { cli } from './helpers/cli.js';
import { seedReportStore } from './helpers/report-seed.js';
import { messageEvent } from './helpers/report-pod-events.js';
import { ingestToBatchItem } from '../src/pod/ingest.js';

const CHROMIUM = process.env.MAILBAG_CHROMIUM ?? '/usr/bin/chromium';
const CHARTS = ['chart-volume', 'chart-latency', 'chart-languages', 'chart-dispositions'];

const dir = mkdtempSync(join(tmpdir(), 'mailbag-report-html-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const db = join(dir, 'store.db');
const store = Store.open(db);
seedReportStore(store);
store.close();
const cfg = join(dir, 'c.yaml');
writeFileSync(cfg, `store: { path: ${JSON.stringify(db)} }\nspool: { dir: ${JSON.stringify(join(dir, 'spool'))} }\n`);

async function launch(): Promise<Browser | string> {
  if (!existsSync(CHROMIUM)) return `${CHROMIUM} not found (apt-get install chromium)`;
  try {
    return await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
    });
  } catch (err) {
    return `${CHROMIUM} does not start: ${(err as Error).message.split('\n')[0]}`;
  }
}

// Started once here to learn whether it starts at all (and closed: an open browser would
// keep the test process alive); each test starts its own.
const probe = await launch();
const unavailable = typeof probe === 'string' ? probe : false;
if (typeof probe === 'string') console.log(`# report-html: Chromium tests skipped: ${probe}`);
else await probe.close();

t.test('the page is self-contained: no external reference, no fetch allowed', async (t) => {
  const file = join(dir, 'static.html');
  const r = await cli(['report', '--since', '2026-11-29', '--until', '2026-11-30', '--html', file, '--config', cfg]);
  t.equal(r.code, 0, r.stderr);
  t.equal(r.stderr, `report written to ${file}\n`);
  t.equal(r.stdout.length, 0, 'no --format: nothing on stdout');
  const html = readFileSync(file, 'utf8');
  t.notMatch(html, /<(script|link|img)[^>]+(src|href)=/i, 'no script, style sheet or image loaded from elsewhere');
  t.match(html, /Content-Security-Policy" content="default-src 'none'/);
  t.match(html, /Chart\.js v4/, 'the chart library is inlined');
  const withJson = await cli(['report', '--since', '2026-11-29', '--until', '2026-11-30', '--html', file, '--format', 'json', '--config', cfg]);
  t.equal((JSON.parse(withJson.stdout.toString()) as { messages: { received: number } }).messages.received, 5, '--html with --format also prints');
});

t.test('a name that cannot be written: exit 1, one line, no page', async (t) => {
  const file = join(dir, 'no-such-dir', 'r.html');
  const r = await cli(['report', '--html', file, '--config', cfg]);
  t.equal(r.code, 1);
  t.equal(r.stderr, `mailbag report: cannot write ${file}: ENOENT\n`);
});



for (const [name, window] of [
  ['the seeded day', ['--since', '2026-11-29', '--until', '2026-11-30']],
  ['an empty window (every chart still draws its axes)', ['--since', '2020-01-01', '--until', '2020-01-08']],
] as const) {
  t.test(`headless Chromium: ${name}`, { skip: unavailable }, async (t) => {
    const browser = await launch();
    if (typeof browser === 'string') throw new Error(browser);
    t.teardown(() => browser.close());
    const file = join(dir, `${name.length}.html`);
    const r = await cli(['report', ...window, '--html', file, '--config', cfg]);
    t.equal(r.code, 0, r.stderr);

    const page = await browser.newPage();
    const problems: string[] = [];
    const requests: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error' || m.type() === 'warning') problems.push(`console ${m.type()}: ${m.text()}`);
    });
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    page.on('request', (req) => requests.push(req.url()));
    const url = pathToFileURL(file).href;
    await page.goto(url, { waitUntil: 'load' });
    await page.waitForFunction("document.body.dataset.charts === 'rendered'", undefined, { timeout: 30_000 });

    // In-page code as text: the test's TypeScript has no DOM types.
    const drawn = (await page.evaluate(`${JSON.stringify(CHARTS)}.map((id) => {
      const canvas = document.getElementById(id);
      if (!canvas) return { id, pixels: -1 };
      const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
      let pixels = 0;
      for (let i = 3; i < data.length; i += 4) if (data[i] > 0) pixels++;
      return { id, pixels };
    })`)) as { id: string; pixels: number }[];
    for (const c of drawn) t.ok(c.pixels > 500, `${c.id} drew on its canvas (${c.pixels} pixels)`);
    t.same(problems, [], 'no console errors or warnings');
    t.same(requests, [url], 'the page fetched nothing but itself');

    if (name === 'the seeded day') {
      // What the charts were given is the report's own data.
      const series = await page.evaluate(`(() => {
        const data = JSON.parse(document.getElementById('report-data').textContent);
        return { received: data.buckets.reduce((a, b) => a + b.received, 0), dispositions: data.pod.dispositions.map((d) => d.disposition) };
      })()`);
      t.same(series, { received: 5, dispositions: ['continue', 'discard'] });
      t.match(await page.textContent('body'), /3 of 4 messages linked/);
    }
  });
}

// Values that came from mail and the upstream's events (rule names, dispositions, language
// tags, a next hop's name) shaped to break out of the page: each is shown as text, none
// becomes markup or script.
const HOSTILE = ['</script><script>document.title="pwned"</script>', '"><img src=x onerror="document.title=\'pwned\'">', "<b id='x'>&amp;</b>\u2028"];
const hostileDb = join(dir, 'hostile.db');
{
  const s = Store.open(hostileDb);
  const at = Date.UTC(2026, 10, 29, 10);
  s.pod.storeBatch(
    HOSTILE.map((h, i) =>
      ingestToBatchItem(messageEvent({ guid: `hostile${i}`, at: at + i, upstreamQid: `4UHOST${i}`, messageId: `h${i}@sender.test`, disposition: h, rules: [[h, h]] }), 'test'),
    ),
    { source: 'test' },
  );
  s.queue.insertMessage({ qid: '0MHOSTILE0001', receivedAt: at, envelopeFrom: 'a@sender.test', size: 10, spoolPath: '/nonexistent/h', spoolOffset: 0, sha256: '0'.repeat(64), recipients: ['r0@m.example'] });
  s.multilingual.recordChoices('0MHOSTILE0001', [{ rcpt: 'r0@m.example', mode: 'select', partIndex: 1, tags: HOSTILE[0]!, translationType: null, rule: 'exact', why: 'test', preferences: 'de', fromMismatch: false, dkim: null }], at);
  s.queue.recordRound(
    '0MHOSTILE0001',
    [{ qid: '0MHOSTILE0001', nexthop: `smtp://${HOSTILE[1]!}`, startedAt: at + 5, durationMs: 5, reply: '250 ok', outcome: 'delivered', recipients: [{ rcpt: 'r0@m.example', state: 'delivered', reply: '250 ok', nextAttemptAt: at }] }],
    ['r0@m.example'],
    at + 5,
  );
  s.close();
}
const hostileCfg = join(dir, 'hostile.yaml');
writeFileSync(hostileCfg, `store: { path: ${JSON.stringify(hostileDb)} }\nspool: { dir: ${JSON.stringify(join(dir, 'spool'))} }\n`);

t.test('values from mail are escaped: no markup, no script of theirs', async (t) => {
  const file = join(dir, 'hostile.html');
  const r = await cli(['report', '--since', '2026-11-29', '--until', '2026-11-30', '--html', file, '--config', hostileCfg]);
  t.equal(r.code, 0, r.stderr);
  const html = readFileSync(file, 'utf8');
  HOSTILE.forEach((h, i) => t.notOk(html.includes(h), `value ${i} is not in the page as it is`));
  t.equal(html.match(/<script\b/g)?.length, 3, 'only the page\'s own three script elements');
  t.equal(html.match(/<\/script>/g)?.length, 3);
  t.notMatch(html, /<img\b|<b id=/, 'no element of theirs');
  t.match(html, '&#60;/script&#62;&#60;script&#62;document.title=&#34;pwned&#34;', 'shown as text in the tables');
});

t.test('headless Chromium: values from mail are text, the page runs only its own script', { skip: unavailable }, async (t) => {
  const browser = await launch();
  if (typeof browser === 'string') throw new Error(browser);
  t.teardown(() => browser.close());
  const file = join(dir, 'hostile-chromium.html');
  const r = await cli(['report', '--since', '2026-11-29', '--until', '2026-11-30', '--html', file, '--config', hostileCfg]);
  t.equal(r.code, 0, r.stderr);
  const page = await browser.newPage();
  const problems: string[] = [];
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') problems.push(`console ${m.type()}: ${m.text()}`);
  });
  await page.goto(pathToFileURL(file).href, { waitUntil: 'load' });
  await page.waitForFunction("document.body.dataset.charts === 'rendered'", undefined, { timeout: 30_000 });
  t.same(problems, []);
  const seen = (await page.evaluate(`(() => ({
    title: document.title,
    injected: document.querySelectorAll('img, b#x, script:not([id="report-data"])').length,
    text: document.body.textContent,
    data: JSON.parse(document.getElementById('report-data').textContent).pod.topRules.map((r) => r.rule),
  }))()`)) as { title: string; injected: number; text: string; data: string[] };
  t.match(seen.title, /^mailbag report /, 'the title is the page\'s own');
  t.equal(seen.injected, 2, 'no element but the page\'s own two scripts');
  HOSTILE.forEach((h, i) => t.ok(seen.text.includes(h), `value ${i} is shown as text`));
  t.same([...seen.data].sort(), [...HOSTILE].sort(), 'the embedded data holds the values as they are');
});
