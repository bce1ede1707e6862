// Opens a connection to another MPM's acceptor: plain TCP, or TLS from the first octet
// when the peer has imp.tls (RFC 753 has no STARTTLS). Shared by the shipper's bag
// exchange (imp:// routes) and the reply forwarder (imp.mpms), so both reach a TLS
// acceptor the same way.
import { connect as netConnect, isIP, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';

export interface MpmConnectOptions {
  host: string;
  port: number;
  /** TLS from the first octet; `verify` checks the certificate chain and the host name (sent as SNI unless an IP). */
  tls?: { verify: boolean } | undefined;
  /**
   * Plain TCP: do not end our side when the peer's FIN comes first. (Our own half-close
   * never stops reading, over TCP or TLS: the reply forwarder ends first and reads on.)
   */
  allowHalfOpen?: boolean;
}

export interface MpmConnection {
  socket: Socket;
  /** Emitted once octets may be written: `connect`, or `secureConnect` after the TLS handshake. */
  readyEvent: 'connect' | 'secureConnect';
}

export function connectToMpm(o: MpmConnectOptions): MpmConnection {
  if (!o.tls) return { socket: netConnect({ host: o.host, port: o.port, allowHalfOpen: o.allowHalfOpen ?? false }), readyEvent: 'connect' };
  const socket = tlsConnect({
    host: o.host,
    port: o.port,
    rejectUnauthorized: o.tls.verify,
    ...(isIP(o.host) ? {} : { servername: o.host }),
  });
  return { socket, readyEvent: 'secureConnect' };
}
