// What a rewriting intermediary owes the sender's authentication: the DKIM signatures
// (and any ARC chain) are checked on the bytes as received, the verdict is written into
// an Authentication-Results field (RFC 8601), and, when an ARC key is configured, every
// rewritten copy is ARC-sealed (RFC 8617) so the next hop can trust that verdict although
// the body hash no longer matches. mailauth does the cryptography; DNS goes through the
// resolver the caller passes (tests pass a stub, never the network).
import { arc, dkimVerify, sealMessage, type ARCSealOptions, type DNSResolver } from 'mailauth';
import { fieldValue, type MimeHeaderField } from '../../mime/tree.js';

export interface ArcKey {
  signingDomain: string;
  selector: string;
  privateKey: string | Buffer;
}

/** The verdict on the message as received, for every copy made from it. */
export interface ReceivedAuthentication {
  /** A complete `Authentication-Results:` field, CRLF-terminated. */
  field: Buffer;
  /** Its value after the authserv-id, for ARC-Authentication-Results. */
  authResults: string;
  /** The chain validation state for the next ARC set (`none`, `pass`, `fail`). */
  cv: string;
  /** The instance number the next ARC set takes. */
  nextInstance: number;
  /** One word per DKIM signature (`pass`, `fail`, `none`, ...), for logs and the store. */
  dkim: string[];
}

/** Verifies DKIM and any ARC chain of the message before it is rewritten. */
export async function authenticateReceived(message: Buffer, o: { authservId: string; resolver: DNSResolver }): Promise<ReceivedAuthentication> {
  const dkim = await dkimVerify(message, { resolver: o.resolver });
  const chain = await arc(dkim.arc as Parameters<typeof arc>[0], { resolver: o.resolver });
  const results = dkim.results.map((r) => r.info).filter((s): s is string => typeof s === 'string' && s !== '');
  if (results.length === 0) results.push('dkim=none');
  if (chain.info) results.push(chain.info);
  const authResults = `${o.authservId};\r\n ${results.join(';\r\n ')}`;
  return {
    field: Buffer.from(`Authentication-Results: ${authResults}\r\n`),
    authResults,
    cv: chain.status.result,
    nextInstance: (typeof chain.i === 'number' ? chain.i : 0) + 1,
    dkim: dkim.results.map((r) => r.status.result),
  };
}

/** RFC 8617 section 4.2.1: instance numbers run from 1 to 50. */
const MAX_ARC_INSTANCE = 50;

/**
 * The ARC set for a rewritten copy, to prepend to it (empty when the received chain
 * failed: RFC 8617 section 5.1.2, a failed chain is not extended; empty too when the chain
 * already has 50 sets, since an i=51 set makes the whole chain fail at the next hop).
 */
export async function arcSealCopy(copy: Buffer, key: ArcKey, received: ReceivedAuthentication, signTime = new Date()): Promise<Buffer> {
  if (received.cv !== 'none' && received.cv !== 'pass') return Buffer.alloc(0);
  if (received.nextInstance > MAX_ARC_INSTANCE) return Buffer.alloc(0);
  const seal: ARCSealOptions & { i: number; cv: string; authResults: string; signTime: Date } = {
    signingDomain: key.signingDomain,
    selector: key.selector,
    privateKey: key.privateKey,
    i: received.nextInstance,
    cv: received.cv,
    authResults: received.authResults,
    signTime,
  };
  return sealMessage(copy, seal);
}

/**
 * True for an Authentication-Results field in the name of `authservId` (case-insensitive,
 * comments and the optional version aside). Such a field that arrived with the message was
 * not written by this gateway: a copy that carries the gateway's verdict must not carry it
 * too (RFC 8601 section 5), or a next hop trusting the gateway could read the forged one.
 */
export function claimsAuthservId(field: MimeHeaderField, authservId: string): boolean {
  if (field.name === null || field.name.toLowerCase() !== 'authentication-results') return false;
  const value = fieldValue(field).replace(/\([^()]*\)/g, ' ').trim();
  const id = /^[^\s;]*/.exec(value)![0];
  return id.toLowerCase() === authservId.toLowerCase();
}
