// PoD events shaped like the real ones (test/fixtures/pod: PPS 8.21+ events without `pps{}`,
// agent and cid under metadata.origin.data, `-0700` offsets, sm.* numbers as strings, the
// sendmail line in `data`), written from the schemas for the correlation tests.
import { ingestToBatchItem } from '../../src/pod/ingest.js';
import type { PodBatchItem } from '../../src/store/pod-store.js';

const AGENT = 'm0000123.ppops.net';
const origin = { origin: { data: { agent: AGENT, cid: 'pphosted_prodmgt_hosted', version: '8.21.0.1358' } } };

/** `2026-11-30T09:12:01.000000-0700` for an instant (ms): PoD's spelling, seven hours west. */
export function podTs(ms: number): string {
  const local = new Date(ms - 7 * 3600_000).toISOString().replace('Z', '');
  return `${local.slice(0, 19)}.${local.slice(20, 23)}000-0700`;
}

export interface MessageEventSpec {
  guid: string;
  qid: string;
  at: number;
  messageId?: string;
  from?: string;
  rcpts?: string[];
  disposition?: string;
  finalAction?: string;
  finalRule?: string;
  spam?: number;
  phish?: number;
  impostor?: number;
  virusNames?: string[];
  quarantine?: { folder: string; rule: string };
  sid?: string;
}

export function messageEvent(s: MessageEventSpec): string {
  const from = s.from ?? 'alice@sender.test';
  const rcpts = s.rcpts ?? ['bob@example.test'];
  const modules: Record<string, unknown> = {
    spf: { result: 'pass' },
    dkimv: [{ domain: 'sender.test', selector: 's1', result: 'pass' }],
    spam: {
      scores: { overall: s.spam ?? 0, engine: s.spam ?? 0, classifiers: { spam: s.spam ?? 0, phish: s.phish ?? 0, impostor: s.impostor ?? 0, malware: 0, adult: 0, bulk: 0, suspect: 0, lowpriority: 0 } },
      triggeredClassifier: (s.spam ?? 0) >= 50 ? 'spam' : 'none',
      version: { engine: '8.21.0-2405220000', definitions: '2405220000' },
    },
  };
  if (s.virusNames) modules.av = { virusNames: s.virusNames };
  const action = s.finalAction ?? 'accept';
  return JSON.stringify({
    connection: { country: 'us', helo: 'mail.sender.test', host: 'mail.sender.test', ip: '192.0.2.10', protocol: 'smtp:esmtps', resolveStatus: 'ok', sid: s.sid ?? '3y8abcd123', tls: { inbound: { cipher: 'ECDHE-RSA-AES256-GCM-SHA384', cipherBits: 256, version: 'TLSv1.2' } } },
    envelope: { from, rcpts },
    filter: {
      actions: [
        { action: 'continue', isFinal: 'False', module: 'spam', rule: 'notspam' },
        { action, isFinal: 'True', module: 'access', rule: s.finalRule ?? 'system' },
      ],
      delivered: { rcpts },
      disposition: s.disposition ?? 'continue',
      durationSecs: 0.11872,
      modules,
      msgSizeBytes: 1127,
      qid: s.qid,
      ...(s.quarantine ? { quarantine: s.quarantine } : {}),
      routeDirection: 'inbound',
      routes: ['default_inbound'],
      suborgs: { rcpts: ['0'], sender: '0' },
      verified: { rcpts },
    },
    guid: s.guid,
    metadata: origin,
    msg: {
      header: { from: [`"Alice" <${from}>`], ...(s.messageId ? { 'message-id': [s.messageId] } : {}), subject: ['Quarterly figures'], to: rcpts },
      lang: '',
      normalizedHeader: {},
      parsedAddresses: {},
      sizeBytes: 1151,
    },
    msgParts: [],
    ts: podTs(s.at),
  });
}

/** A maillog event for one sendmail line `QID: FIELDS` logged at `at`. */
export function maillogEvent(id: string, qid: string, at: number, fields: string): string {
  const ts = podTs(at);
  return JSON.stringify({
    data: `${ts} ${AGENT.split('.')[0]} sendmail[17965]: ${qid}: ${fields}`,
    id,
    metadata: { customerId: 'c82abcde-5678-42dd-1234-1234563f9cff', ...origin },
    // sm.* as the agent sends it: cut at '=' and not to be trusted (the line is)
    sm: { qid, stat: 'Sent' },
    ts,
  });
}

/** The upstream's `from=` line and the delivery line to mailbag, whose reply names mailbag's qid. */
export function maillogPair(o: { idPrefix: string; qid: string; at: number; messageId?: string; from?: string; to?: string | string[]; queuedAs?: string; relay?: string; stat?: string }): string[] {
  const from = o.from ?? 'alice@sender.test';
  const to = [o.to ?? 'bob@example.test'].flat();
  const stat = o.stat ?? (o.queuedAs ? `Sent (2.0.0 Ok: queued as ${o.queuedAs})` : 'Sent (Ok: queued)');
  return [
    maillogEvent(`${o.idPrefix}-1`, o.qid, o.at, `from=<${from}>, size=1557, class=0, nrcpts=1${o.messageId ? `, msgid=${o.messageId}` : ''}, proto=ESMTP, daemon=MTA, relay=mail.sender.test [192.0.2.10]`),
    maillogEvent(`${o.idPrefix}-2`, o.qid, o.at + 1500, `to=${to.map((r) => `<${r}>`).join(',')}, delay=00:00:01, xdelay=00:00:01, mailer=esmtp, pri=120812, relay=${o.relay ?? 'mailbag.example.test. [198.51.100.7]'}, dsn=2.0.0, stat=${stat}`),
  ];
}

/** Payloads as store batch items; a payload that does not ingest fails the test's assumptions loudly. */
export function batch(payloads: readonly string[]): PodBatchItem[] {
  return payloads.map((p, i) => {
    const item = ingestToBatchItem(p, `test:${i}`);
    if (item.kind === 'dead') throw new Error(`test event ${i} did not ingest: ${item.row.reason}`);
    return item;
  });
}
