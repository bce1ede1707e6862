// Realistic PoD events for the ingest benchmark: every public sample event of
// test/fixtures/pod (both PPS shapes, their quirks, 1.4 to 6 KB message events, 0.6 to 1 KB
// maillog lines) used in turn as a template, each copy with its own guid or id, queue id,
// session id, Message-ID, recipients and time, so no two events share an identity.
// Deterministic: the same seed gives the same events in the benchmark's two processes.
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { formatPodTime } from '../../src/pod/time.js';
import type { PodEventKind } from '../../src/pod/ingest.js';
import { prng } from '../lib/prng.js';

type Json = Record<string, unknown>;

const DIR = new URL('../../test/fixtures/pod/', import.meta.url);
const read = (name: string) => readFileSync(new URL(name, DIR), 'utf8');
const lines = (name: string) => read(name).split('\n').filter((l) => l.trim());

function templates(kind: PodEventKind): Json[] {
  if (kind === 'maillog') return lines('elastic-test-mail.jsonl').map((l) => JSON.parse(l) as Json);
  const dd = parse(read('datadog-proofpoint-on-demand_tests.yaml')) as { tests: { sample: string }[] };
  return [...lines('elastic-test-message.jsonl'), read('sumologic-message-log.json'), dd.tests[0]!.sample].map((l) => JSON.parse(l) as Json);
}


const ALNUM = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

function ids(random: () => number) {
  const word = (n: number, alphabet = ALNUM) => {
    let s = '';
    for (let i = 0; i < n; i++) s += alphabet[Math.floor(random() * alphabet.length)];
    return s;
  };
  return {
    word,
    qid: () => `${word(2, '0123456789')}${word(4, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ')}${word(8, '0123456789')}`,
    user: () => `${word(1, 'abcdefghijklmnopqrstuvwxyz')}${word(5, 'abcdefghijklmnopqrstuvwxyz0123456789')}`,
  };
}

function clone(v: Json): Json {
  return structuredClone(v);
}

/** Whole `sm.*`/line quirks stay as the template has them; only identities and times move. */
function maillogCopy(t: Json, n: number, tsUs: number, r: ReturnType<typeof ids>): Json {
  const e = clone(t);
  const sm = e['sm'] as Json;
  const oldQid = sm['qid'] as string;
  const qid = r.qid();
  const ts = formatPodTime(tsUs, -420);
  const colonTs = `${ts.slice(0, -2)}:${ts.slice(-2)}`;
  const to = `${r.user()}@example.com`;
  // older agents write the offset as -07:00, newer ones as -0700
  e['ts'] = /:\d\d$/.test(e['ts'] as string) ? colonTs : ts;
  e['id'] = `${r.word(20)}${String(n % 100).padStart(2, '0')}`;
  sm['qid'] = qid;
  if (Array.isArray(sm['to'])) sm['to'] = [to];
  const data = (e['data'] as string).replace(/^\S+/, colonTs).split(oldQid).join(qid);
  e['data'] = data.replace(/\bto=[^,]+/, `to=<${to}>`).replace(/\bmsgid=<[^>]*>/, `msgid=<${r.word(16)}@mail.example.com>`);
  return e;
}

function messageCopy(t: Json, tsUs: number, r: ReturnType<typeof ids>): Json {
  const e = clone(t);
  const qid = r.qid();
  e['guid'] = r.word(32);
  e['ts'] = formatPodTime(tsUs, -420);
  const filter = e['filter'] as Json;
  filter['qid'] = qid;
  const connection = e['connection'] as Json;
  connection['sid'] = r.word(10, 'abcdefghijklmnopqrstuvwxyz0123456789');
  const rcpts = Array.from({ length: 1 + Math.floor(qid.charCodeAt(3) % 3) }, () => `${r.user()}@example.com`);
  (e['envelope'] as Json)['rcpts'] = rcpts;
  const msg = e['msg'] as Json;
  const header = (msg['header'] ??= {}) as Json;
  header['message-id'] = [`<${r.word(24)}@mail.example.org>`];
  header['to'] = rcpts;
  return e;
}

/**
 * `count` events of `kind` as their JSON text, `ts` one millisecond apart from `startMs`
 * plus a few random microseconds.
 */
export function generateEvents(kind: PodEventKind, count: number, seed: number, startMs: number): string[] {
  const random = prng(seed);
  const r = ids(random);
  const tpl = templates(kind);
  const out: string[] = new Array<string>(count);
  for (let i = 0; i < count; i++) {
    const tsUs = (startMs + i) * 1000 + Math.floor(random() * 1000);
    const t = tpl[i % tpl.length]!;
    out[i] = JSON.stringify(kind === 'message' ? messageCopy(t, tsUs, r) : maillogCopy(t, i, tsUs, r));
  }
  return out;
}
