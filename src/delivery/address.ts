import { normaliseDomain } from './domain.js';

/**
 * The form an address is looked up by: domain in the normal form (`normaliseDomain`:
 * `bücher.example` and `xn--bcher-kva.example` are one domain), local part lower-cased
 * as nearly every mailbox store treats it. Undefined when it is not `local@domain`.
 * Only for comparing and filing: mail is relayed to the address as the client wrote it.
 */
export function addressKey(address: string): string | undefined {
  const at = address.lastIndexOf('@');
  if (at <= 0 || at === address.length - 1) return undefined;
  const domain = normaliseDomain(address.slice(at + 1));
  if (!/^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*$|^\[[^\]]+\]$/.test(domain)) return undefined;
  return `${address.slice(0, at).toLowerCase()}@${domain}`;
}
