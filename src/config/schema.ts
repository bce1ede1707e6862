import { z } from 'zod';
import { normaliseDomainPattern } from '../delivery/domain.js';
import { multilingualSchema } from './multilingual-schema.js';
import { parseDuration, parseSize } from './units.js';

const duration = z
  .union([z.string(), z.number()])
  .transform((v, ctx) => {
    const ms = parseDuration(v);
    if (ms === undefined) {
      ctx.addIssue({ code: 'custom', message: `not a duration: ${JSON.stringify(v)} (use e.g. 250ms, 30s, 5m, 2h, 5d)` });
      return z.NEVER;
    }
    return ms;
  });

const size = z
  .union([z.string(), z.number()])
  .transform((v, ctx) => {
    const n = parseSize(v);
    if (n === undefined) {
      ctx.addIssue({ code: 'custom', message: `not a size: ${JSON.stringify(v)} (use e.g. 10485760, 512KiB, 25MiB)` });
      return z.NEVER;
    }
    return n;
  });

const port = z.number().int().min(0).max(65535);
const host = z.string().min(1);

const listen = z.strictObject({ host, port });

/**
 * A recipient-domain pattern: `example.test`, `*.example.test` or `*`, in U-labels or
 * A-labels, kept in the normal form (lower-case A-labels) that addresses are compared in.
 */
const domainPattern = z
  .string()
  .transform(normaliseDomainPattern)
  .pipe(
    z.string().regex(/^(\*|(\*\.)?[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*)$/, {
      message: 'must be a domain (A-labels or U-labels), *.suffix or *',
    }),
  );

/**
 * STARTTLS towards an SMTP/LMTP next hop: `none` never, `opportunistic` when offered (a
 * failed STARTTLS reply falls back to plaintext), `required` or the attempt defers (4xx).
 */
export const TLS_POLICIES = ['none', 'opportunistic', 'required'] as const;
export type TlsPolicy = (typeof TLS_POLICIES)[number];

/** A network next hop's TLS settings; `tlsVerify` checks the certificate and host name. */
export interface HopTls {
  tls: TlsPolicy;
  tlsVerify: boolean;
}

/** Where a route sends mail. `imp://` is reserved until IMP routing lands. */
export type NextHop =
  | ({ kind: 'smtp'; host: string; port: number; url: string } & HopTls)
  | ({ kind: 'lmtp'; host: string; port: number; url: string } & HopTls)
  | { kind: 'maildir'; path: string; url: string };

/**
 * The defaults an operator expects from MTAs: opportunistic STARTTLS without certificate
 * checks (an unverifiable certificate still beats plaintext, as Postfix's `may`), and a
 * verified certificate once TLS is required (as Postfix's `secure`).
 */
export function defaultHopTls(tls: TlsPolicy = 'opportunistic'): HopTls {
  return { tls, tlsVerify: tls === 'required' };
}

export function parseNextHop(value: string, tls: HopTls = defaultHopTls()): NextHop | string {
  const maildir = /^maildir:(.+)$/.exec(value);
  if (maildir) return { kind: 'maildir', path: maildir[1]!, url: value };
  const net = /^(smtp|lmtp|imp):\/\/(\[[^\]]+\]|[^:/]+):(\d{1,5})\/?$/.exec(value);
  if (!net) return 'must be smtp://host:port, lmtp://host:port or maildir:PATH';
  const [, scheme, rawHost, rawPort] = net;
  const p = Number(rawPort);
  if (p < 1 || p > 65535) return `port ${rawPort} is out of range`;
  if (scheme === 'imp') return 'imp:// next hops are reserved for IMP routing, which this version does not support yet';
  const h = rawHost!.replace(/^\[|\]$/g, '');
  return { kind: scheme as 'smtp' | 'lmtp', host: h, port: p, url: value, ...tls };
}

const route = z
  .strictObject({
    domain: domainPattern,
    nexthop: z.string(),
    /** STARTTLS policy towards an smtp:// or lmtp:// next hop (default opportunistic). */
    tls: z.enum(TLS_POLICIES).optional(),
    /** Verify the next hop's certificate (default: true when tls is required, else false). */
    tlsVerify: z.boolean().optional(),
  })
  .transform((r, ctx) => {
    const tls = r.tls ?? 'opportunistic';
    const hop = parseNextHop(r.nexthop, { tls, tlsVerify: r.tlsVerify ?? defaultHopTls(tls).tlsVerify });
    if (typeof hop === 'string') {
      ctx.addIssue({ code: 'custom', path: ['nexthop'], message: hop });
      return z.NEVER;
    }
    if (hop.kind === 'maildir' && (r.tls !== undefined || r.tlsVerify !== undefined)) {
      ctx.addIssue({ code: 'custom', path: [r.tls !== undefined ? 'tls' : 'tlsVerify'], message: 'applies to smtp:// and lmtp:// next hops only' });
      return z.NEVER;
    }
    if (tls === 'none' && r.tlsVerify === true) {
      ctx.addIssue({ code: 'custom', path: ['tlsVerify'], message: 'there is no certificate to verify with tls: none' });
      return z.NEVER;
    }
    return { domain: r.domain, nexthop: hop };
  });

/** One next hop, one TLS policy: routes sharing a next hop share its connections. */
const routes = z.array(route).superRefine((list, ctx) => {
  const seen = new Map<string, { index: number; hop: NextHop }>();
  list.forEach((r, index) => {
    const first = seen.get(r.nexthop.url);
    if (!first) return void seen.set(r.nexthop.url, { index, hop: r.nexthop });
    const a = first.hop;
    const b = r.nexthop;
    if (a.kind !== 'maildir' && b.kind !== 'maildir' && (a.tls !== b.tls || a.tlsVerify !== b.tlsVerify)) {
      ctx.addIssue({
        code: 'custom',
        path: [index, 'tls'],
        message: `next hop ${b.url} has other TLS settings in routes.${first.index}; give every route to it the same tls and tlsVerify`,
      });
    }
  });
});

const cidr = z.string().regex(/^[0-9A-Fa-f:.]+(\/\d{1,3})?$/, { message: 'must be an IP address or CIDR block' });

export const configSchema = z.strictObject({
  gateway: z
    .strictObject({
      /** Name used in the SMTP banner, Received: lines and bounces. */
      hostname: host.default('mailbag.localhost'),
    })
    .prefault({}),
  smtp: z
    .strictObject({
      listen: listen.default({ host: '127.0.0.1', port: 2525 }),
      maxMessageBytes: size.prefault(26_214_400),
      maxRecipients: z.number().int().min(1).default(100),
      maxConnections: z.number().int().min(1).default(500),
      maxConnectionsPerIp: z.number().int().min(1).default(50),
      /** New connections one client address may open per minute (421 4.7.0 beyond); trusted networks are exempt; 0 = no limit. */
      maxConnectionRatePerIp: z.number().int().min(0).default(600),
      maxLineLength: z.number().int().min(512).default(4096),
      /** smtp-server holds each new connection this long before the banner (early-talker detection). */
      greetingDelay: duration.prefault(100),
      socketTimeout: duration.prefault(300_000),
      /** A command line must arrive whole within this of its first byte (421 4.4.2 otherwise); 0 = no limit. */
      commandTimeout: duration.prefault('1m'),
      /** The message data must arrive whole within this of the 354 (421 4.4.2 otherwise); 0 = no limit. */
      dataTimeout: duration.prefault('10m'),
      /** What to do with bare LF / bare CR line endings in DATA: reject (Postfix smtpd_forbid_bare_newline) or normalise. */
      bareNewline: z.enum(['reject', 'normalise']).default('reject'),
      localDomains: z.array(domainPattern).default([]),
      trustedNetworks: z.array(cidr).default([]),
      tls: z.strictObject({ key: z.string().min(1), cert: z.string().min(1) }).optional(),
      auth: z
        .strictObject({
          users: z.array(z.strictObject({ username: z.string().min(1), password: z.string().min(1) })).min(1),
          /** Allow AUTH on connections without TLS (loopback testing only). */
          allowInsecure: z.boolean().default(false),
        })
        .optional(),
      proxyProtocol: z.boolean().default(false),
      xclient: z.boolean().default(false),
      reverseDns: z.boolean().default(false),
    })
    .prefault({}),
  spool: z.strictObject({ dir: z.string().min(1).default('./var/spool') }).prefault({}),
  store: z
    .strictObject({
      path: z.string().min(1).default('./var/mailbag.db'),
      /** Finished messages, their recipients and attempts are kept this long, then pruned. */
      retention: duration.prefault('30d').refine((ms) => ms >= 60_000, { message: 'must be at least 1m' }),
    })
    .prefault({}),
  queue: z
    .strictObject({
      lifetime: duration.prefault('5d'),
      retryInitial: duration.prefault('60s'),
      retryMax: duration.prefault('1h'),
      concurrency: z.number().int().min(1).default(20),
      attemptTimeout: duration.prefault('5m'),
      shutdownGrace: duration.prefault('30s'),
      /** Attempts in flight to one next hop; beyond it, a recipient group waits its turn without taking a slot. */
      perNexthopConcurrency: z.number().int().min(1).default(10),
      /** TCP connect to a next hop. */
      connectTimeout: duration.prefault('30s'),
      /** From the connect to the end of the session set-up (greeting, EHLO/LHLO, STARTTLS). */
      greetingTimeout: duration.prefault('60s'),
    })
    .prefault({}),
  routes: routes.default([]),
  admin: z
    .strictObject({
      enabled: z.boolean().default(true),
      listen: listen.default({ host: '127.0.0.1', port: 9025 }),
    })
    .prefault({}),
  imp: z
    .strictObject({
      /** This gateway's 32-bit internet host number (RFC 753 ihn). */
      ihn: z.number().int().min(-2147483648).max(4294967295).default(2130706433),
      maxDepth: z.number().int().min(4).max(1024).default(64),
      maxBagBytes: size.prefault(16_777_215 + 4),
    })
    .prefault({}),
  multilingual: multilingualSchema,
  log: z
    .strictObject({
      level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
    })
    .prefault({}),
});

export type Config = z.output<typeof configSchema>;
export type ConfigInput = z.input<typeof configSchema>;
