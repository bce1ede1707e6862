// HS256 JSON Web Tokens (RFC 7519 with RFC 7515 compact JWS), the PoD Log API's bearer
// tokens. Small enough to write with node:crypto: one algorithm, no key sets, and the
// checks that matter (algorithm pinned, constant-time signature compare, expiry).
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

export interface PodTokenClaims {
  /** The cluster id the token is for. */
  cid: string;
  /** Token id: one session per token is keyed on it. */
  jti: string;
  /** Issued at, seconds since the epoch. */
  iat: number;
  /** Expires at, seconds since the epoch. */
  exp: number;
}

export class TokenError extends Error {
  readonly code = 'ERR_POD_TOKEN';
  constructor(message: string) {
    super(message);
    this.name = 'TokenError';
  }
}

const b64url = (b: Buffer | string): string => Buffer.from(b).toString('base64url');

function signature(secret: Buffer, signingInput: string): Buffer {
  return createHmac('sha256', secret).update(signingInput).digest();
}

export function signToken(secret: Buffer, claims: { cid: string; expiresInSec: number }, nowMs = Date.now()): string {
  const iat = Math.floor(nowMs / 1000);
  const body: PodTokenClaims = { cid: claims.cid, jti: randomBytes(12).toString('base64url'), iat, exp: iat + claims.expiresInSec };
  const input = `${b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }))}.${b64url(JSON.stringify(body))}`;
  return `${input}.${b64url(signature(secret, input))}`;
}

function decodePart(part: string, what: string): Record<string, unknown> {
  try {
    const value: unknown = JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
    if (typeof value === 'object' && value !== null && !Array.isArray(value)) return value as Record<string, unknown>;
  } catch {
    // fall through
  }
  throw new TokenError(`the token's ${what} is not a JSON object`);
}

/** The claims of a valid, unexpired HS256 token signed with `secret`; else a TokenError saying why. */
export function verifyToken(secret: Buffer, token: string, nowMs = Date.now()): PodTokenClaims {
  const parts = token.split('.');
  if (parts.length !== 3 || parts.some((p) => !/^[A-Za-z0-9_-]*$/.test(p))) throw new TokenError('not a JWT (three base64url parts)');
  const [h, p, s] = parts as [string, string, string];
  const header = decodePart(h, 'header');
  if (header.alg !== 'HS256') throw new TokenError(`token algorithm ${JSON.stringify(header.alg)} is not HS256`);
  const expected = signature(secret, `${h}.${p}`);
  const given = Buffer.from(s, 'base64url');
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) throw new TokenError('bad token signature');
  const c = decodePart(p, 'payload');
  if (typeof c.cid !== 'string' || typeof c.jti !== 'string' || typeof c.exp !== 'number' || typeof c.iat !== 'number') {
    throw new TokenError('token claims cid, jti, iat and exp are required');
  }
  if (c.exp * 1000 <= nowMs) throw new TokenError('token expired');
  return { cid: c.cid, jti: c.jti, iat: c.iat, exp: c.exp };
}
