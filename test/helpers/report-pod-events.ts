// PoD events shaped like the real ones (the public samples in test/fixtures/pod: PPS 8.21
// message events without `pps{}`, maillog events with the raw sendmail line in `data`), built
// for a given upstream qid, time and outcome. Used by the report tests and bench/lookup.

export interface MessageEventSpec {
  guid: string;
  /** ms since the epoch. */
  at: number;
  upstreamQid: string;
  messageId: string;
  disposition: string;
  /** `module/rule` pairs, in filter.actions order; the last one is final. */
  rules: readonly (readonly [module: string, rule: string])[];
  from?: string;
  rcpts?: readonly string[];
}

/** `2026-11-29T01:00:00.000000-0700`: PoD's own spelling (offset without a colon). */
export function podTime(ms: number): string {
  const local = new Date(ms - 7 * 3_600_000).toISOString();
  return `${local.slice(0, 23)}000-0700`;
}

export function messageEvent(s: MessageEventSpec): string {
  const from = s.from ?? 'sender@upstream.example';
  const rcpts = s.rcpts ?? ['rcpt@mailbag.example'];
  return JSON.stringify({
    connection: { country: '**', helo: 'client.example', host: 'client.example', ip: '192.0.2.10', protocol: 'smtp:smtp', resolveStatus: 'ok', sid: `${s.upstreamQid.slice(0, 8)}sid`, tls: { inbound: { cipher: 'ECDHE-RSA-AES256-GCM-SHA384', cipherBits: 256, version: 'TLSv1.2' } } },
    envelope: { from, rcpts },
    filter: {
      actions: s.rules.map(([module, rule], i) => ({ action: s.disposition, isFinal: i === s.rules.length - 1, module, rule })),
      delivered: { rcpts },
      disposition: s.disposition,
      durationSecs: 0.1,
      msgSizeBytes: 1127,
      qid: s.upstreamQid,
      routeDirection: 'inbound',
      routes: ['default_inbound'],
      suborgs: { rcpts: rcpts.map(() => '0'), sender: '0' },
      verified: { rcpts },
    },
    guid: s.guid,
    metadata: { origin: { data: { agent: 'm0000123.ppops.net', cid: 'pphosted_example_hosted', version: '8.21.0.1358' } } },
    msg: {
      header: { from: [`<${from}>`], 'message-id': [`<${s.messageId}>`], subject: ['report test'], to: rcpts.map((r) => `<${r}>`) },
      lang: '',
      normalizedHeader: { from: [`<${from}>`], 'message-id': [s.messageId], subject: ['report test'], to: [...rcpts] },
      parsedAddresses: {},
      sizeBytes: 1151,
    },
    msgParts: [],
    ts: podTime(s.at),
  });
}

export interface MaillogEventSpec {
  id: string;
  at: number;
  upstreamQid: string;
  /** The sendmail line after `QID: `, e.g. `to=<a@x>, ..., stat=Sent (Ok: queued as QID)`. */
  fields: string;
}

export function maillogEvent(s: MaillogEventSpec): string {
  const ts = podTime(s.at);
  return JSON.stringify({
    data: `${ts} m0000123 sendmail[17965]: ${s.upstreamQid}: ${s.fields}`,
    id: s.id,
    metadata: { origin: { data: { agent: 'm0000123.ppops.net', cid: 'pphosted_example_hosted' }, schemaVersion: '20200420' } },
    pps: { agent: 'm0000123.ppops.net', cid: 'pphosted_example_hosted' },
    sm: { qid: s.upstreamQid },
    ts,
  });
}

/** The upstream's `from=` line for a message. */
export function fromLine(from: string, messageId: string, size = 1151): string {
  return `from=<${from}>, size=${size}, class=0, nrcpts=1, msgid=<${messageId}>, proto=ESMTP, daemon=MTA, relay=client.example [192.0.2.10]`;
}

/** The upstream's delivery line to mailbag, with mailbag's own 250 reply text. */
export function sentToMailbagLine(rcpt: string, mailbagQid: string): string {
  return `to=<${rcpt}>, delay=00:00:01, xdelay=00:00:01, mailer=esmtp, pri=120812, relay=mailbag.example. [198.51.100.7], dsn=2.0.0, stat=Sent (2.6.0 Ok: queued as ${mailbagQid})`;
}
