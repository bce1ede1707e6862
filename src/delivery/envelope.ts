import { z } from 'zod';
import type { MessageParams, RecipientParams } from '../store/queue-store.js';

/**
 * What a spool file says about its own message, so the queue can be rebuilt from the
 * spool alone (as Postfix queue files carry their envelope records). MAIL and RCPT
 * parameters are optional: a listener fills in what its client gave.
 */
export interface SpoolEnvelope {
  qid: string;
  /** ms since the epoch */
  receivedAt: number;
  /** The MAIL FROM address; '' is the null sender. */
  sender: string;
  /** MAIL FROM parameters (RFC 6152 BODY, RFC 6531 SMTPUTF8, RFC 1870 SIZE, RFC 3461 RET/ENVID), as stored. */
  mail?: MessageParams | undefined;
  recipients: EnvelopeRecipient[];
  client?: ClientInfo;
}

/** RCPT TO and its RFC 3461 parameters (NOTIFY, ORCPT), as stored. */
export type EnvelopeRecipient = { address: string } & RecipientParams;

export interface ClientInfo {
  address?: string;
  hostname?: string;
  helo?: string;
  authUser?: string;
  /** The SMTP session: its id, RFC 3848 protocol (ESMTPS, ...) and TLS (what PoD message events report). */
  session?: { id: string; protocol: string; tls?: { version: string; cipher?: string } };
}

const envelopeSchema = z.object({
  qid: z.string().regex(/^[0-9A-Z]{13}$/),
  receivedAt: z.number().int().nonnegative(),
  sender: z.string(),
  mail: z
    .object({
      bodyType: z.enum(['7bit', '8bitmime']).optional(),
      smtpUtf8: z.boolean().optional(),
      declaredSize: z.number().int().nonnegative().optional(),
      dsnRet: z.enum(['FULL', 'HDRS']).optional(),
      dsnEnvid: z.string().optional(),
    })
    .optional(),
  recipients: z
    .array(
      z.object({
        address: z.string().min(1),
        orcpt: z.string().optional(),
        notify: z.array(z.enum(['NEVER', 'SUCCESS', 'FAILURE', 'DELAY'])).optional(),
      }),
    )
    .min(1),
  client: z
    .object({
      address: z.string().optional(),
      hostname: z.string().optional(),
      helo: z.string().optional(),
      authUser: z.string().optional(),
      session: z
        .object({ id: z.string(), protocol: z.string(), tls: z.object({ version: z.string(), cipher: z.string().optional() }).optional() })
        .optional(),
    })
    .optional(),
});

/*
 * Spool file layout (version 1):
 *
 *   MAILBAG-SPOOL 1 <n>\n        magic, format version, length of the JSON in octets
 *   <n octets of JSON>\n         the SpoolEnvelope
 *   <message octets>             exactly what is relayed
 *   \nMAILBAG-SPOOL-END <size> <sha256 hex of the message octets>\n
 *
 * The header is written before the first message byte (the envelope is known before
 * DATA); the trailer goes out with the last write, before the fsync, so a file in the
 * spool directory without a matching trailer was cut short or changed. Readers skip the
 * header by offset (the store keeps it) and stop after `size` octets.
 */
const MAGIC = 'MAILBAG-SPOOL 1 ';
const TRAILER_RE = /\nMAILBAG-SPOOL-END (\d{1,16}) ([0-9a-f]{64})\n$/;
/** The longest trailer: 16 digits of size. */
export const MAX_TRAILER_BYTES = '\nMAILBAG-SPOOL-END  \n'.length + 16 + 64;
/** A header longer than this is not one mailbag wrote (a million recipients would not need it). */
export const MAX_HEADER_BYTES = 64 * 1024 * 1024;

export function encodeHeader(envelope: SpoolEnvelope): Buffer {
  // one buffer, written in place: no intermediate buffers to concatenate
  const json = JSON.stringify(envelope);
  const jsonLength = Buffer.byteLength(json);
  const line = `${MAGIC}${jsonLength}\n`;
  const header = Buffer.allocUnsafe(line.length + jsonLength + 1);
  header.write(line, 0, 'latin1');
  header.write(json, line.length, 'utf8');
  header[header.length - 1] = 0x0a;
  return header;
}

export function encodeTrailer(size: number, sha256: string): Buffer {
  return Buffer.from(`\nMAILBAG-SPOOL-END ${size} ${sha256}\n`);
}

/** Why a file is not a valid spool file (`code` says how). */
export class SpoolFormatError extends Error {
  readonly code = 'ERR_MAILBAG_SPOOL_FORMAT';
  constructor(message: string) {
    super(message);
    this.name = 'SpoolFormatError';
  }
}

/**
 * The header line, from the first bytes of a file: the JSON length and where the JSON
 * starts. Undefined: not a spool file with an envelope (one written before envelopes).
 */
export function headerLine(start: Buffer): { jsonStart: number; jsonLength: number } | undefined {
  if (start.length < MAGIC.length || start.toString('latin1', 0, MAGIC.length) !== MAGIC) return undefined;
  const nl = start.indexOf(0x0a, MAGIC.length);
  if (nl === -1 || nl > MAGIC.length + 12) throw new SpoolFormatError('the header line is cut short');
  const digits = start.toString('latin1', MAGIC.length, nl);
  if (!/^\d+$/.test(digits)) throw new SpoolFormatError('the header line has no envelope length');
  const jsonLength = Number(digits);
  if (jsonLength > MAX_HEADER_BYTES) throw new SpoolFormatError(`the envelope length ${jsonLength} is beyond any mailbag wrote`);
  return { jsonStart: nl + 1, jsonLength };
}

/** Parses the envelope JSON (the bytes after the header line, up to its length). */
export function decodeEnvelope(json: Buffer): SpoolEnvelope {
  let value: unknown;
  try {
    value = JSON.parse(json.toString('utf8'));
  } catch {
    throw new SpoolFormatError('the envelope is not valid JSON');
  }
  const parsed = envelopeSchema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new SpoolFormatError(`the envelope is invalid: ${issue ? `${issue.path.join('.') || '(root)'}: ${issue.message}` : 'unknown'}`);
  }
  return stripUndefined(parsed.data) as SpoolEnvelope;
}

/** The trailer at the end of a file's last bytes. */
export function decodeTrailer(tail: Buffer): { size: number; sha256: string; length: number } | undefined {
  const m = TRAILER_RE.exec(tail.toString('latin1'));
  if (!m) return undefined;
  return { size: Number(m[1]), sha256: m[2]!, length: m[0].length };
}

function stripUndefined<T>(v: T): T {
  return JSON.parse(JSON.stringify(v)) as T;
}
