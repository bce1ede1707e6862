// Who hears what about a delivery round, as RFC 3461 section 4 and 6 tell a relay:
// failures are reported unless NOTIFY leaves FAILURE out (NOTIFY=NEVER never hears a
// thing); a success is reported when NOTIFY asked for SUCCESS and the next hop did not
// take the request over (Maildir: `delivered`; an SMTP next hop without DSN: `relayed`;
// a next hop with DSN was given NOTIFY and reports itself). ORCPT and ENVID go into the
// report. A failure report returns the whole message for RET=FULL, headers otherwise
// (RFC 3461 4.3 leaves the default to the MTA: mailbag returns headers); success
// reports always carry headers only.
import { messageParams, recipientParams, type MessageRow, type RecipientRow, type RecipientUpdate } from '../store/queue-store.js';
import type { Store } from '../store/store.js';
import { buildDeliveryStatusNotification, type BounceRecipient } from './bounce.js';
import { enqueueGenerated, readHeaderSection } from './enqueue.js';
import { hasEightBit, hasEightBitHeaders } from '../mime/downgrade.js';
import type { QidGenerator } from './qid.js';
import type { Spool, SpooledMessageRef } from './spool.js';
import type { RelayParams, SuccessDsn } from './transports/transport.js';

/** A message larger than this is returned as headers only, even for RET=FULL (the text says so). */
export const FULL_RETURN_LIMIT = 10 * 1024 * 1024;

/** A recipient's new state after an attempt, and who reports its success. */
export type RoundUpdate = RecipientUpdate & { successDsn?: SuccessDsn | undefined };

/** The stored MAIL FROM / RCPT TO parameters of a message's recipients, for the transports. */
export function relayParams(msg: MessageRow, rows: readonly (RecipientRow | undefined)[]): RelayParams {
  const recipients: Record<string, ReturnType<typeof recipientParams>> = {};
  for (const r of rows) if (r && (r.dsn_notify || r.dsn_orcpt)) recipients[r.rcpt] = recipientParams(r);
  return { message: messageParams(msg), recipients };
}

/** `550 5.1.1 no such user` -> `5.1.1`; falls back to the reply class. */
export function enhancedStatus(reply: string, cls: '2' | '4' | '5'): string {
  const m = /^\d{3}[ -]([245]\.\d{1,3}\.\d{1,3})\b/.exec(reply);
  if (m && m[1]![0] === cls) return m[1]!;
  return `${cls}.0.0`;
}

/**
 * The recipients of this round to report on, and the failed ones whose NOTIFY says not
 * to (logged by the caller, never silently dropped).
 */
export function reportableRecipients(
  byRcpt: ReadonlyMap<string, RecipientRow>,
  updates: readonly RoundUpdate[],
  now: Date,
): { report: BounceRecipient[]; suppressed: string[] } {
  const report: BounceRecipient[] = [];
  const suppressed: string[] = [];
  for (const u of updates) {
    const row = byRcpt.get(u.rcpt);
    const notify = row?.dsn_notify ? row.dsn_notify.split(',') : undefined;
    const orcpt = row?.dsn_orcpt ? { originalRecipient: row.dsn_orcpt } : {};
    if (u.state === 'failed') {
      if (notify && !notify.includes('FAILURE')) {
        suppressed.push(u.rcpt);
        continue;
      }
      const expired = u.reply.startsWith('expired after');
      const reply = expired ? u.reply.replace(/^.*last reply: /, '') : u.reply;
      report.push({ address: u.rcpt, action: 'failed', status: expired ? '5.4.7' : enhancedStatus(reply, '5'), diagnosticCode: `smtp; ${reply}`, lastAttemptAt: now, ...orcpt });
    } else if (u.state === 'delivered' && notify?.includes('SUCCESS') && u.successDsn !== 'passed-on') {
      const action = u.successDsn ?? 'delivered';
      report.push({ address: u.rcpt, action, status: enhancedStatus(u.reply, '2'), diagnosticCode: `smtp; ${u.reply}`, lastAttemptAt: now, ...orcpt });
    }
  }
  return { report, suppressed };
}

/** Builds the DSN for these recipients and queues it to the envelope sender; returns its qid. */
export async function queueDsn(
  deps: { spool: Spool; store: Store; qids: QidGenerator; hostname: string },
  msg: MessageRow,
  recipients: BounceRecipient[],
  now: Date,
): Promise<string> {
  const headers = await readHeaderSection(deps.spool, msg);
  let originalMessage: Buffer | undefined;
  let notReturnedBytes: number | undefined;
  if (msg.dsn_ret === 'FULL' && recipients.some((r) => r.action === 'failed')) {
    if (msg.size <= FULL_RETURN_LIMIT) originalMessage = await readWhole(deps.spool, msg);
    else notReturnedBytes = msg.size;
  }
  const bytes = buildDeliveryStatusNotification({
    reportingMta: deps.hostname,
    qid: msg.qid,
    envelopeFrom: msg.envelope_from,
    envelopeId: msg.dsn_envid ?? undefined,
    arrivalDate: new Date(msg.received_at),
    recipients,
    originalHeaders: headers,
    originalMessage,
    notReturnedBytes,
    now,
  });
  // The report is 8-bit only when what it returns is; it needs SMTPUTF8 when it goes to a
  // UTF-8 address or returns UTF-8 headers of a message that came with SMTPUTF8.
  const smtpUtf8 = /[^\x00-\x7f]/.test(msg.envelope_from) || (msg.smtputf8 === 1 && hasEightBitHeaders(originalMessage ?? headers));
  return enqueueGenerated(deps, {
    envelopeFrom: '',
    recipients: [msg.envelope_from],
    bytes,
    params: { bodyType: hasEightBit(bytes) ? '8bitmime' : undefined, smtpUtf8 },
    origin: { qid: msg.qid, kind: 'bounce' },
  });
}

async function readWhole(spool: Spool, msg: SpooledMessageRef): Promise<Buffer> {
  const chunks: Buffer[] = [];
  const stream = spool.read(msg);
  try {
    for await (const c of stream as AsyncIterable<Buffer>) chunks.push(c);
  } finally {
    stream.destroy();
  }
  return Buffer.concat(chunks);
}
