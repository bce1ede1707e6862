// mailbag's own events in the PoD Log API's schemas, built from the store's rows: one
// `message` event per message (from its recorded facts) and sendmail-style `maillog`
// lines: `from=` when the message was accepted, one `to=` line per delivery attempt and
// outcome. Pure: the publisher passes rows and its identity in.
import type { JsonObject } from './json.js';
import type { MessageFacts, PartFacts } from './message-facts.js';
import { formatPodTime } from './time.js';

export interface PublisherIdentity {
  /** pps.agent: the gateway's host name. */
  agent: string;
  /** pps.cid: the cluster id this publisher serves. */
  cid: string;
  /** pps.version: mailbag's version. */
  version: string;
  /** Patterns of the local domains (`example.test`, `*.example.test`): routeDirection. */
  localDomains: readonly string[];
}

/** The agent's local offset at that instant, as PoD's `ts` carries it. */
function podTs(ms: number): string {
  return formatPodTime(ms * 1000, -new Date(ms).getTimezoneOffset());
}

function domainOf(address: string): string {
  return address.slice(address.lastIndexOf('@') + 1).toLowerCase();
}

function isLocal(address: string, patterns: readonly string[]): boolean {
  const d = domainOf(address);
  if (!address.includes('@')) return false;
  return patterns.some((p) => p === '*' || p === d || (p.startsWith('*.') && d.endsWith(p.slice(1))));
}

/** inbound: to local domains from elsewhere; outbound: from a local domain elsewhere; internal; external. */
export function routeDirection(from: string, rcpts: readonly string[], local: readonly string[]): string {
  const fromLocal = isLocal(from, local);
  const allLocal = rcpts.length > 0 && rcpts.every((r) => isLocal(r, local));
  if (allLocal) return fromLocal ? 'internal' : 'inbound';
  return fromLocal ? 'outbound' : 'external';
}

function partEvent(p: PartFacts): JsonObject {
  return {
    detectedCharset: p.charset,
    detectedExt: p.ext,
    detectedMime: p.mime,
    detectedName: p.name,
    detectedSizeBytes: p.decodedBytes,
    disposition: p.disposition,
    md5: p.md5,
    sha256: p.sha256,
    isArchive: /^(application\/(zip|x-zip-compressed|x-7z-compressed|x-rar-compressed|gzip|x-tar|x-gzip))$/.test(p.mime),
    isCorrupted: p.isCorrupted,
    isDeleted: false,
    isProtected: false,
    isTimedOut: false,
    isVirtual: false,
    labeledCharset: p.charset,
    labeledExt: p.ext,
    labeledMime: p.mime,
    labeledName: p.name,
    sizeDecodedBytes: p.decodedBytes,
  };
}

/** The `message` event of a message: `recordedAt` (when mailbag finished taking it) is its ts. */
export function messageEvent(f: MessageFacts, recordedAt: number, id: PublisherIdentity): JsonObject {
  const connection: JsonObject = { sid: f.session.sid, helo: f.client.helo, host: f.client.host, ip: f.client.ip, protocol: f.session.protocol };
  const t = f.session.tls;
  if (t) connection.tls = { inbound: t.cipher ? { version: t.version, cipher: t.cipher } : { version: t.version } };
  return {
    guid: f.qid,
    ts: podTs(recordedAt),
    connection,
    envelope: { from: f.envelope.from, rcpts: f.envelope.rcpts },
    msg: { header: f.headers, parsedAddresses: f.parsedAddresses, sizeBytes: f.sizeBytes },
    ...(f.parts ? { msgParts: f.parts.map(partEvent) } : {}),
    filter: {
      qid: f.qid,
      disposition: 'continue',
      actions: [{ action: 'continue', module: 'mailbag', rule: 'accept', isFinal: true }],
      durationSecs: Math.max(0, recordedAt - f.receivedAt) / 1000,
      startTime: podTs(f.receivedAt),
      routeDirection: routeDirection(f.envelope.from, f.envelope.rcpts, id.localDomains),
      msgSizeBytes: f.sizeBytes,
      routes: [],
      suborgs: { sender: '', rcpts: [] },
    },
    pps: { agent: id.agent, cid: id.cid, version: id.version },
  };
}

/** sendmail's delay= format: `HH:MM:SS`, or `D+HH:MM:SS` from a day on. */
export function sendmailDelay(ms: number): string {
  const total = Math.max(0, Math.floor(ms / 1000));
  const days = Math.floor(total / 86_400);
  const hms = [Math.floor((total % 86_400) / 3600), Math.floor((total % 3600) / 60), total % 60].map((n) => String(n).padStart(2, '0')).join(':');
  return days ? `${days}+${hms}` : hms;
}

function angle(address: string): string {
  return `<${address}>`;
}

function line(ms: number, agent: string, qid: string, equates: Array<[string, string | number | undefined]>): string {
  const host = agent.split('.')[0] || agent;
  const body = equates.filter(([, v]) => v !== undefined && v !== '').map(([k, v]) => `${k}=${v}`).join(', ');
  return `${podTs(ms)} ${host} mailbag[${process.pid}]: ${qid}: ${body}`;
}

function relayOf(f: MessageFacts): string {
  const host = f.client.host && f.client.host !== f.client.ip ? `${f.client.host} ` : '';
  return `${host}[${f.client.ip}]`;
}

/** The `from=` line, logged when the message was accepted. */
export function fromLineEvent(f: MessageFacts, id: PublisherIdentity): JsonObject {
  const msgid = f.messageId;
  const data = line(f.receivedAt, id.agent, f.qid, [
    ['from', angle(f.envelope.from)],
    ['size', f.sizeBytes],
    ['class', 0],
    ['nrcpts', f.envelope.rcpts.length],
    ['msgid', msgid],
    ['proto', f.session.protocol],
    ['daemon', 'mailbag'],
    ['relay', relayOf(f)],
  ]);
  return {
    pps: { agent: id.agent, cid: id.cid },
    ts: podTs(f.receivedAt),
    data,
    sm: {
      qid: f.qid,
      from: angle(f.envelope.from),
      sizeBytes: f.sizeBytes,
      class: 0,
      nrcpts: f.envelope.rcpts.length,
      ...(msgid ? { msgid } : {}),
      proto: f.session.protocol,
      daemon: 'mailbag',
      relay: relayOf(f),
    },
    id: `${f.qid}-from`,
  };
}

export interface AttemptForLog {
  id: number;
  qid: string;
  nexthop: string;
  startedAt: number;
  durationMs: number;
  /** Per recipient: its state after the attempt and the reply it got. */
  recipients: Array<{ rcpt: string; state: string; reply: string }>;
}

function mailerAndRelay(nexthop: string): { mailer: string; relay: string } {
  const net = /^(smtp|lmtp):\/\/\[?([^\]/]+?)\]?:(\d+)\/?$/.exec(nexthop);
  if (net) return { mailer: net[1] === 'lmtp' ? 'lmtp' : 'esmtp', relay: `${net[2]} [${net[2]}]` };
  return { mailer: 'local', relay: 'localhost' };
}

function statOf(state: string, reply: string): string {
  const text = reply.replace(/[\r\n]+/g, ' ').trim();
  if (state === 'delivered') return `Sent (${text})`;
  if (state === 'deferred') return `Deferred: ${text}`;
  return text || 'Service unavailable';
}

function dsnOf(state: string, reply: string): string {
  const m = /\b([245]\.\d{1,3}\.\d{1,3})\b/.exec(reply);
  if (m) return m[1]!;
  return state === 'delivered' ? '2.0.0' : state === 'deferred' ? '4.0.0' : '5.0.0';
}

/**
 * The `to=` lines of one delivery attempt: recipients with the same outcome and reply
 * share a line, as sendmail logs one line per mailer delivery.
 */
export function toLineEvents(a: AttemptForLog, f: MessageFacts | undefined, id: PublisherIdentity): JsonObject[] {
  const end = a.startedAt + a.durationMs;
  const groups = new Map<string, { state: string; reply: string; rcpts: string[] }>();
  for (const r of a.recipients) {
    const key = `${r.state}\u0000${r.reply}`;
    const g = groups.get(key) ?? { state: r.state, reply: r.reply, rcpts: [] };
    g.rcpts.push(r.rcpt);
    groups.set(key, g);
  }
  const { mailer, relay } = mailerAndRelay(a.nexthop);
  const out: JsonObject[] = [];
  let n = 0;
  for (const g of groups.values()) {
    const delay = sendmailDelay(end - (f?.receivedAt ?? a.startedAt));
    const xdelay = sendmailDelay(a.durationMs);
    const dsn = dsnOf(g.state, g.reply);
    const stat = statOf(g.state, g.reply);
    const to = g.rcpts.map(angle);
    const data = line(end, id.agent, a.qid, [
      ['to', to.join(',')],
      ['delay', delay],
      ['xdelay', xdelay],
      ['mailer', mailer],
      ['pri', 30000],
      ['relay', relay],
      ['dsn', dsn],
      ['stat', stat],
    ]);
    out.push({
      pps: { agent: id.agent, cid: id.cid },
      ts: podTs(end),
      data,
      sm: {
        qid: a.qid,
        to,
        delay,
        xdelay,
        mailer,
        pri: 30000,
        relay,
        dsn,
        stat,
        ...(f?.messageId ? { msgid: f.messageId } : {}),
        ...(f ? { nrcpts: f.envelope.rcpts.length, sizeBytes: f.sizeBytes } : {}),
      },
      id: `${a.qid}-a${a.id}-${n++}`,
    });
  }
  return out;
}
