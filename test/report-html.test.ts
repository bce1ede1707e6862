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
