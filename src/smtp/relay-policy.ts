import { BlockList, isIPv4, isIPv6 } from 'node:net';
import { domainMatches, domainOf, normaliseDomainPattern } from '../delivery/routes.js';

/** `::ffff:192.0.2.1` is the IPv4 client of a dual-stack listener. */
export function normaliseIp(ip: string): string {
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  return m ? m[1]! : ip;
}

export function buildNetworkList(cidrs: readonly string[]): BlockList {
  const list = new BlockList();
  for (const entry of cidrs) {
    const [addr, bits] = entry.split('/') as [string, string | undefined];
    const type = isIPv4(addr) ? 'ipv4' : isIPv6(addr) ? 'ipv6' : undefined;
    if (!type) throw Object.assign(new Error(`smtp.trustedNetworks: ${entry} is not an IP address or CIDR block`), { code: 'ERR_MAILBAG_CONFIG' });
    const prefix = bits === undefined ? (type === 'ipv4' ? 32 : 128) : Number(bits);
    if (prefix > (type === 'ipv4' ? 32 : 128)) throw Object.assign(new Error(`smtp.trustedNetworks: ${entry} has a bad prefix length`), { code: 'ERR_MAILBAG_CONFIG' });
    list.addSubnet(addr, prefix, type);
  }
  return list;
}

/** Client addresses whose trust is kept (the cache starts afresh when full). */
const TRUSTED_CACHE_SIZE = 4096;

/**
 * No open relay: a recipient is accepted for a local domain from anyone, and for any
 * other domain only from an authenticated client or one in a trusted network.
 */
export class RelayPolicy {
  private readonly trusted: BlockList;
  /** In the normal form addresses are compared in (the config already gives it). */
  private readonly localDomains: readonly string[];

  constructor(localDomains: readonly string[], trustedNetworks: readonly string[]) {
    this.localDomains = localDomains.map(normaliseDomainPattern);
    this.trusted = buildNetworkList(trustedNetworks);
  }

  /**
   * Answers per client address, kept for the addresses seen last: a BlockList check
   * builds a SocketAddress every time, and each connection asks once or twice.
   */
  private readonly trustedCache = new Map<string, boolean>();

  isTrusted(ip: string): boolean {
    let trusted = this.trustedCache.get(ip);
    if (trusted !== undefined) return trusted;
    const addr = normaliseIp(ip);
    trusted = isIPv4(addr) ? this.trusted.check(addr, 'ipv4') : isIPv6(addr) ? this.trusted.check(addr, 'ipv6') : false;
    if (this.trustedCache.size >= TRUSTED_CACHE_SIZE) this.trustedCache.clear();
    this.trustedCache.set(ip, trusted);
    return trusted;
  }

  isLocal(address: string): boolean {
    const domain = domainOf(address);
    return this.localDomains.some((p) => domainMatches(p, domain));
  }

  mayRelay(address: string, client: { ip: string; authenticated: boolean }): boolean {
    return this.isLocal(address) || client.authenticated || this.isTrusted(client.ip);
  }
}
