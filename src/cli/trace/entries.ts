// The timeline entries of `mailbag trace`, one per thing that happened: the upstream filter's
// verdict and maillog lines, mailbag's receipt, IMP hops, language decisions and delivery
// attempts.
import type { MessageKeysRow, MessageOriginRow } from '../../store/correlation-store.js';
import type { StoredPodMaillogEvent, StoredPodMessageEvent } from '../../store/pod-store.js';
import type { AttemptRow, ImpHop, ImpOrigin, MessageRow } from '../../store/queue-store.js';
import type { Store } from '../../store/store.js';

export type TraceHop = 'upstream' | 'mailbag';
export type TraceKind = 'verdict' | 'maillog' | 'received' | 'generated' | 'imp' | 'language' | 'attempt';

export interface TraceEntry {
  /** UTC, six fraction digits. */
  at: string;
  atUs: number;
  hop: TraceHop;
  kind: TraceKind;
  /** The upstream queue id or the mailbag qid the entry belongs to. */
  id: string;
  /** One line. */
  title: string;
  /** Further lines (wrapped by the formatter). */
  lines: string[];
  /** The entry's facts for `--json`. */
  data: Record<string, unknown>;
  /** Something went wrong here (a failure, a bounce, a quarantine): shown in red on a TTY. */
  bad?: boolean;
}

function msIso(ms: number): string {
  return new Date(ms).toISOString().replace('Z', '000Z');
}

/** A member at `path` of parsed JSON, or undefined. */
function dig(value: unknown, ...path: string[]): unknown {
  let v = value;
  for (const p of path) {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) return undefined;
    v = (v as Record<string, unknown>)[p];
  }
  return v;
}

const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
const num = (v: unknown): number | undefined => (typeof v === 'number' ? v : undefined);
const strings = (v: unknown): string[] => (Array.isArray(v) ? v.filter((s): s is string => typeof s === 'string') : []);

interface FilterAction {
  action: string;
  module: string;
  rule: string;
  isFinal: boolean;
}

function actionsOf(event: unknown): FilterAction[] {
  const list = dig(event, 'filter', 'actions');
  if (!Array.isArray(list)) return [];
  return list.map((a) => ({ action: str(dig(a, 'action')) ?? '?', module: str(dig(a, 'module')) ?? '?', rule: str(dig(a, 'rule')) ?? '?', isFinal: dig(a, 'isFinal') === true }));
}

/** The upstream filter's verdict on a message (a PoD message event). */
export function verdictEntry(e: StoredPodMessageEvent): TraceEntry {
  const event: unknown = JSON.parse(e.event);
  const actions = actionsOf(event);
  const final = actions.find((a) => a.isFinal) ?? actions[actions.length - 1];
  const spam = dig(event, 'filter', 'modules', 'spam');
  const classifiers = dig(spam, 'scores', 'classifiers');
  const scores: Record<string, number> = {};
  const overall = num(dig(spam, 'scores', 'overall'));
  if (overall !== undefined) scores.overall = overall;
  for (const c of ['spam', 'phish', 'impostor', 'malware']) {
    const v = num(dig(classifiers, c));
    if (v !== undefined) scores[c] = v;
  }
  const virusNames = strings(dig(event, 'filter', 'modules', 'av', 'virusNames'));
  const folder = str(dig(event, 'filter', 'quarantine', 'folder'));
  const quarantine = folder !== undefined ? { folder, rule: str(dig(event, 'filter', 'quarantine', 'rule')) ?? '' } : null;
  const triggeredClassifier = str(dig(spam, 'triggeredClassifier')) ?? null;
  const from = str(dig(event, 'envelope', 'from')) ?? e.envelope_from ?? '';
  const rcpts = strings(dig(event, 'envelope', 'rcpts'));
  const rules = actions.map((a) => `${a.module}/${a.rule}: ${a.action}${a.isFinal ? ' (final)' : ''}`);
  const disposition = e.disposition ?? str(dig(event, 'filter', 'disposition')) ?? '?';
  const lines = [`guid ${e.guid}, envelope <${from}> -> ${rcpts.map((r) => `<${r}>`).join(', ') || '(none)'}`];
  if (final) lines.push(`final action ${final.action} (${final.module}/${final.rule})`);
  if (Object.keys(scores).length) lines.push(`scores ${Object.entries(scores).map(([k, v]) => `${k} ${v}`).join(', ')}${triggeredClassifier ? `; triggered ${triggeredClassifier}` : ''}`);
  if (virusNames.length) lines.push(`virus ${virusNames.join(', ')}`);
  if (quarantine) lines.push(`quarantine folder ${quarantine.folder}${quarantine.rule ? `, rule ${quarantine.rule}` : ''}`);
  if (rules.length) lines.push(`rules ${rules.join('; ')}`);
  if (e.message_id) lines.push(`Message-ID ${e.message_id}`);
  const bad = virusNames.length > 0 || /^(reject|discard|quarantine)/i.test(final?.action ?? '') || /^(reject|discard|quarantine)/i.test(disposition);
  return {
    at: e.ts,
    atUs: e.ts_us,
    hop: 'upstream',
    kind: 'verdict',
    id: e.qid,
    title: `verdict ${disposition}${final ? `, final action ${final.action}` : ''}`,
    lines,
    data: { guid: e.guid, qid: e.qid, messageId: e.message_id, envelopeFrom: from, rcpts, disposition, finalAction: final ?? null, scores, triggeredClassifier, virusNames, quarantine, rules: actions, sid: e.sid },
    bad,
  };
}

/** One upstream sendmail line (a PoD maillog event), from its parsed columns. */
export function maillogEntry(e: StoredPodMaillogEvent): TraceEntry {
  const rcpts = e.rcpts ? (JSON.parse(e.rcpts) as string[]) : [];
  const lines: string[] = [];
  let title = 'maillog';
  if (e.mail_from !== null) {
    title = `maillog from <${e.mail_from}>`;
    lines.push([e.size !== null ? `size ${e.size}` : '', e.nrcpts !== null ? `nrcpts ${e.nrcpts}` : '', e.message_id ? `msgid ${e.message_id}` : ''].filter(Boolean).join(', '));
  } else if (rcpts.length) {
    title = `maillog to ${rcpts.map((r) => `<${r}>`).join(', ')}`;
  } else {
    // neither from= nor to=: the line itself says what happened
    const data = String((JSON.parse(e.event) as { data?: unknown }).data ?? '');
    const at = data.indexOf(`${e.qid}: `);
    lines.push(at === -1 ? data : data.slice(at + e.qid.length + 2));
  }
  if (e.relay) lines.push(`relay ${e.relay}`);
  if (e.stat) lines.push(`stat ${e.stat}${e.dsn ? ` (dsn ${e.dsn})` : ''}`);
  return {
    at: e.ts,
    atUs: e.ts_us,
    hop: 'upstream',
    kind: 'maillog',
    id: e.qid,
    title,
    lines: lines.filter((l) => l !== ''),
    data: { eventId: e.event_id, qid: e.qid, from: e.mail_from, to: rcpts, relay: e.relay, stat: e.stat, dsn: e.dsn, queuedAs: e.queued_as, messageId: e.message_id, size: e.size, nrcpts: e.nrcpts },
    bad: e.stat !== null && !/^Sent\b/i.test(e.stat),
  };
}

/** An RFC 753 tid as `tn.ihn` (ihn unsigned, as configured). */
function tidText(tid: { tn: number; ihn: number }): string {
  return `${tid.tn}.${tid.ihn >>> 0}`;
}

const ihns = (list: readonly number[]): string => list.map((ihn) => ihn >>> 0).join(', ') || '(empty)';

/** The DELIVER a message arrived with over IMP: from whom, its tid and stamp, the sender's qid. */
function impInEntry(qid: string, at: number, imp: ImpOrigin, origin: MessageOriginRow | undefined): TraceEntry {
  const previous = origin?.kind === 'imp' ? origin.origin_qid : null;
  return {
    at: msIso(at),
    atUs: at * 1000,
    hop: 'mailbag',
    kind: 'imp',
    id: qid,
    title: `IMP in from ${imp.peer ?? 'unknown peer'}: DELIVER tid ${tidText(imp.tid)}`,
    lines: [`stamp ${ihns(imp.stamp)}`, previous ? `sent as ${previous} by the mailbag before this one` : 'no mailbag qid of the sender in the message'],
    data: { direction: 'in', qid, peer: imp.peer ?? null, tid: { tn: imp.tid.tn, ihn: imp.tid.ihn >>> 0 }, stamp: imp.stamp.map((ihn) => ihn >>> 0), previousQid: previous },
  };
}

interface AttemptRecipient {
  rcpt: string;
  state: string;
  reply: string;
  imp?: ImpHop;
}

/** What came back for one DELIVER, as lines: the answer with its reasons, the trail. */
function answerLines(h: ImpHop): string[] {
  const a = h.acknowledge;
  if (!a) return ['no ACKNOWLEDGE (the connection ended first)'];
  const why = [...a.reasons, ...a.howDelivered].join('; ');
  return [`answer ${a.answer ? 'yes' : 'no'}${why ? ` (${why})` : ''}${a.error ? ` [error ${a.error.errorClass}: ${a.error.errorString}]` : ''}`, `trail ${ihns(a.trail)}`];
}

/** Recipients with the same answer and trail share its lines (a 50-recipient bag is not 100 lines). */
function deliveryLines(list: readonly { rcpt: string; hop: ImpHop }[]): string[] {
  const groups = new Map<string, string[]>();
  for (const r of list) {
    const key = answerLines(r.hop).join('\n');
    groups.set(key, [...(groups.get(key) ?? []), `<${r.rcpt}> tid ${tidText(r.hop.tid)}`]);
  }
  return [...groups].flatMap(([answer, rcpts]) => [...rcpts, ...answer.split('\n')]);
}

/** The DELIVERs one attempt shipped to a peer MPM, one entry per bag, with their ACKNOWLEDGEs. */
function impOutEntries(qid: string, a: AttemptRow, rcpts: readonly AttemptRecipient[]): TraceEntry[] {
  const byBag = new Map<string, { rcpt: string; hop: ImpHop }[]>();
  for (const r of rcpts) if (r.imp) byBag.set(r.imp.bag.id, [...(byBag.get(r.imp.bag.id) ?? []), { rcpt: r.rcpt, hop: r.imp }]);
  return [...byBag.values()].map((list) => {
    const { hop } = list[0]!;
    const answers = new Set(list.map((r) => (r.hop.acknowledge ? (r.hop.acknowledge.answer ? 'yes' : 'no') : 'none')));
    const answer = answers.size === 1 ? [...answers][0]! : 'mixed';
    const title = answer === 'none' ? `IMP out to ${hop.peer}: no ACKNOWLEDGE` : `IMP out to ${hop.peer}: ACKNOWLEDGE ${answer}`;
    const b = hop.bag;
    return {
      at: msIso(hop.shippedAt),
      atUs: hop.shippedAt * 1000,
      hop: 'mailbag',
      kind: 'imp',
      id: qid,
      title,
      lines: [`bag ${b.id}: ${b.messages} message${b.messages === 1 ? '' : 's'}, ${b.octets} octets${b.compressed ? ', compressed' : ''}`, ...deliveryLines(list)],
      data: {
        direction: 'out',
        qid,
        peer: hop.peer,
        attemptId: a.id,
        bag: b,
        shippedAt: hop.shippedAt,
        deliveries: list.map((r) => ({ rcpt: r.rcpt, tid: r.hop.tid, acknowledge: r.hop.acknowledge })),
      },
      bad: answer !== 'yes',
    };
  });
}

/**
 * mailbag's side of one message: receipt, IMP hops, language decisions, delivery attempts.
 * `m` and `k` are the message's row and keys, as the caller read them.
 */
export function mailbagEntries(store: Store, qid: string, origin: MessageOriginRow | undefined, m: MessageRow | undefined, k: MessageKeysRow | undefined): TraceEntry[] {
  const out: TraceEntry[] = [];
  const imp = m ? store.queue.impOrigin(qid) : undefined;
  // a bounce is generated here; an IMP forward was received (its origin is the sender's qid)
  const generated = origin?.kind === 'bounce' ? origin : undefined;
  const receivedAt = m?.received_at ?? k?.received_at;
  if (receivedAt !== undefined) {
    const recipients = m ? store.queue.recipients(qid) : [];
    const rcpts = recipients.length ? recipients.map((r) => r.rcpt) : k ? (JSON.parse(k.rcpts) as string[]) : [];
    const from = m?.envelope_from ?? k?.envelope_from ?? '';
    const client = m?.client_address ?? k?.client_address ?? null;
    const size = m?.size ?? k?.size ?? null;
    const title = generated
      ? `generated: ${generated.kind} of ${generated.origin_qid}`
      : imp
        ? `received over IMP from ${client ?? 'unknown peer'}`
        : `received from ${client ?? 'unknown client'}${m?.helo ? ` (helo ${m.helo})` : ''}`;
    const lines = [`envelope <${from}> -> ${rcpts.map((r) => `<${r}>`).join(', ')}`];
    if (size !== null) lines.push(`size ${size} bytes`);
    if (k?.message_id) lines.push(`Message-ID ${k.message_id}`);
    if (k?.upstream_qid) lines.push(`upstream id ${k.upstream_qid}${k.upstream_host ? ` by ${k.upstream_host}` : ''}`);
    if (k?.pp_guid || k?.pp_orig_guid) lines.push(`X-Proofpoint-GUID ${[k.pp_guid, k.pp_orig_guid].filter(Boolean).join(', orig ')}`);
    if (m?.hold_reason) lines.push(`held: ${m.hold_reason}`);
    if (!m) lines.push('message row pruned (retention); keys kept');
    out.push({
      at: msIso(receivedAt),
      atUs: receivedAt * 1000,
      hop: 'mailbag',
      kind: generated ? 'generated' : 'received',
      id: qid,
      title,
      lines,
      data: {
        qid,
        client,
        helo: m?.helo ?? null,
        envelopeFrom: from,
        rcpts: recipients.length ? recipients.map((r) => ({ rcpt: r.rcpt, state: r.state, lastReply: r.last_reply })) : rcpts.map((rcpt) => ({ rcpt })),
        size,
        state: m?.state ?? null,
        messageId: k?.message_id ?? null,
        upstreamQid: k?.upstream_qid ?? null,
        upstreamHost: k?.upstream_host ?? null,
        proofpointGuid: k?.pp_guid ?? null,
        proofpointOrigGuid: k?.pp_orig_guid ?? null,
        origin: origin ? { qid: origin.origin_qid, kind: origin.kind } : null,
      },
    });
    if (imp) out.push(impInEntry(qid, receivedAt, imp, origin));
  }
  for (const c of store.multilingual.choices(qid)) {
    const part = c.part_index === null ? 'unchanged' : `part ${c.part_index}${c.tags ? ` (${c.tags})` : ''}`;
    out.push({
      at: msIso(c.decided_at),
      atUs: c.decided_at * 1000,
      hop: 'mailbag',
      kind: 'language',
      id: qid,
      title: `language <${c.rcpt}>: ${c.mode}, ${part}`,
      lines: [`rule ${c.rule}: ${c.why}`, ...(c.preferences ? [`preferences ${c.preferences}`] : []), ...(c.from_mismatch ? ['the part names another sender than the message'] : [])],
      data: { qid, rcpt: c.rcpt, mode: c.mode, partIndex: c.part_index, tags: c.tags, translationType: c.translation_type, rule: c.rule, why: c.why, preferences: c.preferences, fromMismatch: c.from_mismatch === 1 },
    });
  }
  for (const a of store.queue.attempts(qid)) {
    const rcpts = JSON.parse(a.recipients) as AttemptRecipient[];
    const lines = [`reply ${a.reply ?? '(none)'}`];
    for (const r of rcpts) lines.push(`<${r.rcpt}> ${r.state}${r.reply !== a.reply ? `: ${r.reply}` : ''}`);
    out.push({
      at: msIso(a.started_at),
      atUs: a.started_at * 1000,
      hop: 'mailbag',
      kind: 'attempt',
      id: qid,
      title: `attempt ${a.nexthop}: ${a.outcome} (${a.duration_ms} ms)`,
      lines,
      data: { qid, nexthop: a.nexthop, outcome: a.outcome, durationMs: a.duration_ms, reply: a.reply, recipients: rcpts },
      bad: a.outcome === 'failed' || a.outcome === 'partial',
    });
    out.push(...impOutEntries(qid, a, rcpts));
  }
  return out;
}
