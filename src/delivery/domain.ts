import { domainToASCII } from 'node:url';

/**
 * The one form domains are compared and filed in: lower-case A-labels (IDNA/UTS #46 via
 * `url.domainToASCII`), so `Bücher.example` and `xn--bcher-kva.example` are the same domain.
 * Only for comparison and filing: an address is always relayed as the client wrote it.
 * A domain IDNA refuses (or an address literal) keeps its lower-cased spelling: it still
 * equals itself, and cannot pass for another domain.
 */
export function normaliseDomain(domain: string): string {
  if (/^\p{ASCII}*$/u.test(domain)) return domain.toLowerCase();
  return domainToASCII(domain) || domain.toLowerCase();
}

/** A domain pattern (`example.test`, `*.example.test`, `*`) in the normal form. */
export function normaliseDomainPattern(pattern: string): string {
  if (pattern === '*') return pattern;
  if (pattern.startsWith('*.')) return `*.${normaliseDomain(pattern.slice(2))}`;
  return normaliseDomain(pattern);
}
