import t from 'tap';
import { BadStreamRequest, parseStreamRequest } from '../src/pod/stream-request.js';

const NOW = Date.parse('2026-03-10T12:00:00Z');

function refusal(query: string): string | undefined {
  try {
    parseStreamRequest(new URLSearchParams(query), NOW);
    return undefined;
  } catch (err) {
    if (err instanceof BadStreamRequest) return err.message;
    throw err;
  }
}

t.test('a parameter given twice is a bad request that names it, whichever value comes first', async (t) => {
  const cases: Array<[string, string]> = [
    ['type', 'cid=c&type=message&type=maillog'],
    ['type', 'cid=c&type=maillog&type=message'],
    ['type', 'cid=c&type=message&type=message'],
    ['cid', 'cid=c&cid=d&type=message'],
    ['sinceTime', 'cid=c&type=message&sinceTime=2026-03-01T00:00:00-0800&sinceTime=2026-03-02T00:00:00-0800'],
    ['toTime', 'cid=c&type=message&sinceTime=2026-03-01T00:00:00-0800&toTime=2026-03-02T00:00:00-0800&toTime=2026-03-03T00:00:00-0800'],
  ];
  for (const [name, query] of cases) {
    const reason = refusal(query);
    t.ok(reason?.startsWith(`${name} given 2 times`), `${query}: ${String(reason)}`);
  }
});

t.test('each parameter once is still taken', async (t) => {
  t.same(parseStreamRequest(new URLSearchParams('cid=c&type=maillog'), NOW), { cid: 'c', type: 'maillog', mode: { kind: 'live' } });
  const archive = parseStreamRequest(new URLSearchParams('cid=c&type=message&sinceTime=2026-03-01T00:30:00Z&toTime=2026-03-01T02:10:00Z'), NOW);
  t.same(archive.mode, { kind: 'archive', fromMs: Date.parse('2026-03-01T00:00:00Z'), toMs: Date.parse('2026-03-01T03:00:00Z') });
});
