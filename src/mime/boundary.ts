// MIME multipart boundaries (RFC 2046 section 5.1.1), one generator for every
// multipart mailbag writes.
import { createHash, randomBytes } from 'node:crypto';

export interface BoundaryOptions {
  /** A short readable tag after `=_` (letters, digits, `.`, `-`; others become `_`). */
  tag?: string;
  /**
   * Derive the boundary from the contents instead of at random, so the same input
   * always gives the same bytes (conversions that must be reproducible).
   */
  deterministic?: boolean;
}

/**
 * A boundary that occurs in none of `contents` (as `--boundary`). It starts with `=_`,
 * which quoted-printable and base64 text can never contain, and stays within RFC 2046's
 * 70 characters and `bchars`.
 */
export function mimeBoundary(contents: readonly Buffer[], options: BoundaryOptions = {}): string {
  const tag = (options.tag ?? 'mb').replace(/[^A-Za-z0-9.-]/g, '_').slice(0, 24);
  const clash = (b: string) => contents.some((c) => c.includes(`--${b}`));
  if (options.deterministic) {
    const h = createHash('sha256');
    for (const c of contents) h.update(c);
    let b = `=_${tag}_${h.digest('hex').slice(0, 24)}`;
    while (clash(b)) b += '_';
    return b;
  }
  for (;;) {
    const b = `=_${tag}.${randomBytes(12).toString('base64url')}`;
    if (!clash(b)) return b;
  }
}
