// Where an IMP recipient goes (RFC 753 section 3.7's split) and whether this MPM takes it.
import { BlockList, isIPv4, isIPv6 } from 'node:net';
import { domainMatches, domainOf, normaliseDomainPattern, resolveRoute, type Route } from '../delivery/routes.js';

/** Section 3.7: local host messages, local net messages, foreign net messages. */
export type MessageKind = 'local' | 'local-net' | 'foreign';

export type RecipientVerdict =
  | { ok: true; kind: MessageKind; route: Route }
  | { ok: false; reason: string };

export class ImpRecipientPolicy {
  private readonly localDomains: readonly string[];
  private readonly trustedPeers = new BlockList();

  constructor(
    private readonly routes: readonly Route[],
    localDomains: readonly string[],
    trustedPeers: readonly string[],
  ) {
    this.localDomains = localDomains.map(normaliseDomainPattern);
    for (const entry of trustedPeers) {
      const [addr, bits] = entry.split('/') as [string, string | undefined];
      const type = isIPv4(addr) ? 'ipv4' : 'ipv6';
      this.trustedPeers.addSubnet(addr, bits === undefined ? (type === 'ipv4' ? 32 : 128) : Number(bits), type);
    }
  }

  isLocal(address: string): boolean {
    const domain = domainOf(address);
    return this.localDomains.some((p) => domainMatches(p, domain));
  }

  isTrustedPeer(ip: string): boolean {
    const addr = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip)?.[1] ?? ip;
    if (isIPv4(addr)) return this.trustedPeers.check(addr, 'ipv4');
    if (isIPv6(addr)) return this.trustedPeers.check(addr, 'ipv6');
    return false;
  }

  /**
   * Local host: a local domain (smtp.localDomains) with a deliverable local part.
   * Local net: another domain routed over SMTP/LMTP/Maildir. Foreign net: an imp://
   * route. Only trusted peers may have local-net and foreign messages relayed.
   */
  classify(address: string, peerIp: string): RecipientVerdict {
    const at = address.lastIndexOf('@');
    if (at <= 0 || at === address.length - 1) return { ok: false, reason: 'no such host' };
    const route = resolveRoute(this.routes, address);
    if (this.isLocal(address)) {
      if (!route) return { ok: false, reason: 'no such host' };
      if (!deliverableLocalPart(address.slice(0, at))) return { ok: false, reason: 'no such user' };
      return { ok: true, kind: 'local', route };
    }
    if (!route) return { ok: false, reason: 'no such host' };
    if (!this.isTrustedPeer(peerIp)) return { ok: false, reason: `relaying denied: ${address.slice(at + 1)} is not a local domain of this MPM` };
    return { ok: true, kind: route.nexthop.url.startsWith('imp:') ? 'foreign' : 'local-net', route };
  }
}

/** A local part a mailbox can have: not empty, no path separators or dot names, no controls. */
export function deliverableLocalPart(local: string): boolean {
  if (local.length === 0 || local.length > 64 || local === '.' || local === '..') return false;
  return !/[\u0000-\u001f\u007f/\\]/.test(local);
}
