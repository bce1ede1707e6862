import type { NextHop } from '../config/schema.js';
import { normaliseDomain } from './domain.js';

export { normaliseDomain, normaliseDomainPattern } from './domain.js';

export interface Route {
  domain: string;
  nexthop: NextHop;
}

/** The domain of an address in the normal form (`normaliseDomain`); '' when it has none. */
export function domainOf(address: string): string {
  const at = address.lastIndexOf('@');
  return at === -1 ? '' : normaliseDomain(address.slice(at + 1));
}

/**
 * `example.test` matches itself, `*.example.test` any subdomain of it, `*` everything.
 * Both sides are expected in the normal form (config patterns are normalised when loaded).
 */
export function domainMatches(pattern: string, domain: string): boolean {
  if (pattern === '*') return domain !== '';
  if (pattern.startsWith('*.')) return domain.endsWith(pattern.slice(1)) && domain.length > pattern.length - 1;
  return pattern === domain;
}

/** First matching route in table order, like the config file reads. */
export function resolveRoute(routes: readonly Route[], address: string): Route | undefined {
  const domain = domainOf(address);
  return routes.find((r) => domainMatches(r.domain, domain));
}
