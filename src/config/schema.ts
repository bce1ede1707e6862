import { BlockList, isIP } from 'node:net';
import { z } from 'zod';
import { MAX_BAG_OCTETS } from '../imp/limits.js';
import { normaliseDomainPattern } from '../delivery/domain.js';
import { multilingualOnBecause, multilingualSchema } from './multilingual-schema.js';
import { sharedTokenIssues } from './pod-tokens.js';
import { parseDuration, parseSize } from './units.js';

/** setTimeout's limit: a longer delay fires at once (Node warns and uses 1 ms). */
export const MAX_TIMER_MS = 2 ** 31 - 1;

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

/** A duration that ends up in a timer (socket timeouts, delays, grace periods). */
const timerDuration = duration.refine((ms) => ms <= MAX_TIMER_MS, {
  message: `longer than a timer can hold (${MAX_TIMER_MS} ms, about 24.8 days)`,
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

const LABEL = '[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?';
const DOMAIN_NAME = new RegExp(`^(?=.{1,253}$)${LABEL}(?:\\.${LABEL})*$`);

/** A domain name in letters, digits and hyphens (what banners, Received: and bounces can carry). */
export function isDomainName(value: string): boolean {
  return DOMAIN_NAME.test(value);
}

const domainName = z.string().refine(isDomainName, { message: 'must be a domain name (letters, digits, hyphens and dots)' });

/** Where a listener binds: an IP address or a name (resolved when the gateway starts). */
const host = z.string().refine((v) => isIP(v) !== 0 || isDomainName(v), { message: 'must be an IP address or a host name' });

/** `listen: { port: N }` keeps the default host, `listen: { host: H }` the default port. */
const listen = (defaultPort: number) => z.strictObject({ host: host.default('127.0.0.1'), port: port.default(defaultPort) }).prefault({});

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

/**
 * Where a route sends mail. `imp`: another MPM over RFC 753 IMP; `compress` is the
 * route's own choice of Appendix B basic compression (absent: `imp.compress`).
 */
export type NextHop =
  | ({ kind: 'smtp'; host: string; port: number; url: string } & HopTls)
  | ({ kind: 'lmtp'; host: string; port: number; url: string } & HopTls)
  | { kind: 'imp'; host: string; port: number; url: string; compress?: boolean; tls?: { verify: boolean } }
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
  if (!net) return 'must be smtp://host:port, lmtp://host:port, imp://host:port or maildir:PATH';
  const [, scheme, rawHost, rawPort] = net;
  const p = Number(rawPort);
  if (p < 1 || p > 65535) return `port ${rawPort} is out of range`;
  const h = rawHost!.replace(/^\[|\]$/g, '');
  if (scheme === 'imp') return { kind: 'imp', host: h, port: p, url: value };
  return { kind: scheme as 'smtp' | 'lmtp', host: h, port: p, url: value, ...tls };
}

/**
 * TLS towards another MPM (an imp:// route or an imp.mpms entry). IMP has no STARTTLS: a
 * peer with imp.tls speaks TLS from the first octet, or not at all, so `tls` is `none`
 * (default) or `required`, and `tlsVerify` (default true) applies only to `required`.
 * Returns the shipper's setting, undefined for plain TCP, or an issue naming its key.
 */
function impTlsSetting(tls: TlsPolicy | undefined, tlsVerify: boolean | undefined): { tls: { verify: boolean } | undefined } | { path: string; message: string } {
  if (tls === 'opportunistic') return { path: 'tls', message: 'IMP has no STARTTLS: an imp:// next hop takes tls: none or required' };
  if (tls !== 'required' && tlsVerify !== undefined) return { path: 'tlsVerify', message: 'applies to an imp:// next hop with tls: required' };
  return { tls: tls === 'required' ? { verify: tlsVerify ?? true } : undefined };
}

/**
 * One entry of imp.mpms: an MPM's ihn and the imp://HOST:PORT it listens on, with the
 * same `tls` / `tlsVerify` as an imp:// route (its acceptor may have imp.tls).
 */
const mpmAddress = z
  .strictObject({
    ihn: z.number().int().min(-2147483648).max(4294967295),
    address: z.string(),
    tls: z.enum(TLS_POLICIES).optional(),
    tlsVerify: z.boolean().optional(),
  })
  .transform((m, ctx) => {
    const hop = parseNextHop(m.address);
    if (typeof hop === 'string' || hop.kind !== 'imp') {
      ctx.addIssue({ code: 'custom', path: ['address'], message: typeof hop === 'string' ? hop.replace(/^must be .*$/, 'must be imp://host:port') : 'must be imp://host:port' });
      return z.NEVER;
    }
    const tls = impTlsSetting(m.tls, m.tlsVerify);
    if ('path' in tls) {
      ctx.addIssue({ code: 'custom', path: [tls.path], message: tls.message });
      return z.NEVER;
    }
    return { ihn: m.ihn, address: m.address, host: hop.host, port: hop.port, ...(tls.tls ? { tls: tls.tls } : {}) };
  });

const route = z
  .strictObject({
    domain: domainPattern,
    nexthop: z.string(),
    /** STARTTLS policy towards an smtp:// or lmtp:// next hop (default opportunistic); imp://: none (default) or required, TLS from the first octet. */
    tls: z.enum(TLS_POLICIES).optional(),
    /** Verify the next hop's certificate (default: true when tls is required, else false). */
    tlsVerify: z.boolean().optional(),
    /** imp:// only: ship bags with RFC 753 Appendix B basic compression (default imp.compress). */
    compress: z.boolean().optional(),
  })
  .transform((r, ctx) => {
    const tls = r.tls ?? 'opportunistic';
    const hop = parseNextHop(r.nexthop, { tls, tlsVerify: r.tlsVerify ?? defaultHopTls(tls).tlsVerify });
    if (typeof hop === 'string') {
      ctx.addIssue({ code: 'custom', path: ['nexthop'], message: hop });
      return z.NEVER;
    }
    if (hop.kind === 'maildir' && (r.tls !== undefined || r.tlsVerify !== undefined)) {
      ctx.addIssue({ code: 'custom', path: [r.tls !== undefined ? 'tls' : 'tlsVerify'], message: 'applies to smtp://, lmtp:// and imp:// next hops only' });
      return z.NEVER;
    }
    if (hop.kind === 'imp' && (r.tls !== undefined || r.tlsVerify !== undefined)) {
      const tls = impTlsSetting(r.tls, r.tlsVerify);
      if ('path' in tls) {
        ctx.addIssue({ code: 'custom', path: [tls.path], message: tls.message });
        return z.NEVER;
      }
      if (tls.tls) hop.tls = tls.tls;
    }
    if (r.compress !== undefined) {
      if (hop.kind !== 'imp') {
        ctx.addIssue({ code: 'custom', path: ['compress'], message: 'applies to imp:// next hops only' });
        return z.NEVER;
      }
      hop.compress = r.compress;
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
    if (a.kind === 'imp' && b.kind === 'imp' && a.tls?.verify !== b.tls?.verify) {
      ctx.addIssue({
        code: 'custom',
        path: [index, 'tls'],
        message: `next hop ${b.url} has other TLS settings in routes.${first.index}; give every route to it the same tls and tlsVerify`,
      });
    }
    if (a.kind === 'imp' && b.kind === 'imp' && a.compress !== b.compress) {
      ctx.addIssue({
        code: 'custom',
        path: [index, 'compress'],
        message: `next hop ${b.url} has another compress setting in routes.${first.index}; give every route to it the same compress`,
      });
    }
    if ((a.kind === 'smtp' || a.kind === 'lmtp') && (b.kind === 'smtp' || b.kind === 'lmtp') && (a.tls !== b.tls || a.tlsVerify !== b.tlsVerify)) {
      ctx.addIssue({
        code: 'custom',
        path: [index, 'tls'],
        message: `next hop ${b.url} has other TLS settings in routes.${first.index}; give every route to it the same tls and tlsVerify`,
      });
    }
  });
});

/**
 * `10.0.0.0/8`, `192.0.2.1` or `::1/128`. Checked by adding it to a BlockList, the very
 * operation the SMTP listener performs at start, so what passes here also starts.
 */
export function cidrProblem(entry: string): string | undefined {
  const [addr = '', bits, extra] = entry.split('/');
  const family = isIP(addr);
  if (family === 0 || extra !== undefined) return 'must be an IP address or CIDR block (address/prefix)';
  const max = family === 4 ? 32 : 128;
  if (bits !== undefined && !/^\d{1,3}$/.test(bits)) return `has a bad prefix length (0 to ${max})`;
  const prefix = bits === undefined ? max : Number(bits);
  if (prefix > max) return `has a bad prefix length (0 to ${max})`;
  try {
    new BlockList().addSubnet(addr, prefix, family === 4 ? 'ipv4' : 'ipv6');
  } catch (err) {
    return `is not a usable network: ${(err as Error).message}`;
  }
  return undefined;
}

const cidr = z.string().superRefine((v, ctx) => {
  const problem = cidrProblem(v);
  if (problem) ctx.addIssue({ code: 'custom', message: `${v} ${problem}` });
});

/** What an IMP bag of `maxBagBytes` octets can carry of a message: less than the bag minus its 4-octet header. */
export function impCarriageProblem(maxMessageBytes: number, maxBagBytes: number): string | undefined {
  const room = maxBagBytes - 4;
  if (maxMessageBytes <= room) return undefined;
  return `smtp.maxMessageBytes (${maxMessageBytes}) is larger than an IMP bag can carry: imp.maxBagBytes (${maxBagBytes}) minus its 4-octet header is ${room}`;
}

/** A PoD stream's name: it tags stored events, checkpoints, metrics and `pod status` lines. */
const podStreamName = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, { message: 'must be 1-64 letters, digits, dots, hyphens or underscores' });

/**
 * One PoD Log API stream (issue 10). The token comes from the config or from the
 * environment variable `tokenEnv` names (never logged, redacted by `config show`);
 * `backfillToken(Env)` is a second token for archive requests, so a gap can be filled
 * while the live session runs (the API allows one session per token).
 */
const podStream = z
  .strictObject({
    name: podStreamName,
    url: z.string().refine((v) => /^wss?:\/\/[^/]/.test(v) && URL.canParse(v), { message: 'must be a ws:// or wss:// URL' }),
    cid: z.string().min(1),
    type: z.enum(['message', 'maillog']),
    token: z.string().min(1).optional(),
    tokenEnv: z.string().min(1).optional(),
    backfillToken: z.string().min(1).optional(),
    backfillTokenEnv: z.string().min(1).optional(),
  })
  .superRefine((s, ctx) => {
    if ((s.token === undefined) === (s.tokenEnv === undefined)) ctx.addIssue({ code: 'custom', path: ['token'], message: 'give exactly one of token and tokenEnv' });
    if (s.backfillToken !== undefined && s.backfillTokenEnv !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['backfillToken'], message: 'give at most one of backfillToken and backfillTokenEnv' });
    }
  });

export type PodStreamConfig = z.output<typeof podStream>;

const podSchema = z
  .strictObject({
    streams: z
      .array(podStream)
      .default([])
      .superRefine((streams, ctx) => {
        const seen = new Set<string>();
        streams.forEach((s, i) => {
          if (seen.has(s.name)) ctx.addIssue({ code: 'custom', path: [i, 'name'], message: `stream name '${s.name}' is used twice` });
          seen.add(s.name);
        });
        for (const issue of sharedTokenIssues(streams)) ctx.addIssue({ code: 'custom', path: [issue.stream, issue.key], message: issue.message });
      }),
    /** Events up to this size are taken (over 1 MiB is normal); larger ones are dead-lettered. */
    maxEventBytes: size.refine((n) => n >= 1024 && n <= 256 * 1024 * 1024, { message: 'must be 1KiB to 256MiB' }).prefault('16MiB'),
    /** A ping every this long; no pong by the next ping is a dropped connection. */
    pingInterval: timerDuration.refine((ms) => ms >= 1, { message: 'must be positive' }).prefault('30s'),
    /** The WebSocket handshake must finish within this. */
    connectTimeout: timerDuration.prefault('30s'),
    /** First reconnect delay; doubles per failed attempt up to reconnectMax, with jitter. */
    reconnectInitial: timerDuration.prefault('1s'),
    reconnectMax: timerDuration.prefault('5m'),
    /** After a 409 (the token is used by another session): wait this long (with jitter) and try again. */
    conflictRetry: timerDuration.prefault('10m'),
    /** Events stored per transaction; a batch is also stored after batchDelay. */
    batchSize: z.number().int().min(1).max(10_000).default(500),
    batchDelay: timerDuration.prefault('200ms'),
    /** Ingest (parse, validate, canonical form, hash) on a thread of its own, beside the WebSocket and the store (docs/pod.md). */
    ingestThread: z.boolean().default(true),
    /** mailbag's own events served in the PoD Log API (`/v1/stream`, docs/pod.md). */
    publisher: z
      .strictObject({
        enabled: z.boolean().default(false),
        listen: listen(9026),
        /** wss:// when set; ws:// otherwise. */
        tls: z.strictObject({ key: z.string().min(1), cert: z.string().min(1) }).optional(),
        /** HS256 signing secret for bearer tokens; generated (mode 0600) when missing. */
        secretFile: z.string().min(1).default('./var/pod-publisher.secret'),
        /** The cluster id this publisher serves (`cid=`, `pps.cid`); tokens are minted for it. */
        cid: z.string().min(1).default('mailbag'),
        /** How often a live stream looks for new events in the store. */
        pollInterval: timerDuration.prefault('1s'),
        /** How often each session is pinged; a client that answered nothing by the next ping is dropped. */
        pingInterval: timerDuration.prefault('60s'),
      })
      .prefault({}),
  })
  .prefault({});

export const configSchema = z.strictObject({
  gateway: z
    .strictObject({
      /** Name used in the SMTP banner, Received: lines and bounces. */
      hostname: domainName.default('mailbag.localhost'),
    })
    .prefault({}),
  smtp: z
    .strictObject({
      listen: listen(2525),
      maxMessageBytes: size.prefault(26_214_400),
      maxRecipients: z.number().int().min(1).default(100),
      maxConnections: z.number().int().min(1).default(500),
      maxConnectionsPerIp: z.number().int().min(1).default(50),
      /** New connections one client address may open per minute (421 4.7.0 beyond); trusted networks are exempt; 0 = no limit. */
      maxConnectionRatePerIp: z.number().int().min(0).default(600),
      maxLineLength: z.number().int().min(512).default(4096),
      /** smtp-server holds each new connection this long before the banner (early-talker detection). */
      greetingDelay: timerDuration.prefault(100),
      socketTimeout: timerDuration.prefault(300_000),
      /** A command line must arrive whole within this of its first byte (421 4.4.2 otherwise); 0 = no limit. */
      commandTimeout: timerDuration.prefault('1m'),
      /** The message data must arrive whole within this of the 354 (421 4.4.2 otherwise); 0 = no limit. */
      dataTimeout: timerDuration.prefault('10m'),
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
      /** PoD events (by their own time) and dead letters are kept this long, then pruned; stream checkpoints stay. */
      podRetention: duration.prefault('30d').refine((ms) => ms >= 60_000, { message: 'must be at least 1m' }),
    })
    .prefault({}),
  queue: z
    .strictObject({
      /** Compared with the message's age, never put in a timer: may exceed MAX_TIMER_MS. */
      lifetime: duration.prefault('5d'),
      retryInitial: timerDuration.prefault('60s'),
      retryMax: timerDuration.prefault('1h'),
      concurrency: z.number().int().min(1).default(20),
      attemptTimeout: timerDuration.prefault('5m'),
      shutdownGrace: timerDuration.prefault('30s'),
      /**
       * Size of the results journal (spool/results.journal), allocated at start: delivery
       * results the store still refuses at a stop are kept there for the next start.
       */
      resultJournalBytes: z.number().int().min(65_536).max(1024 * 1024 * 1024).default(1024 * 1024),
      /** Attempts in flight to one next hop; beyond it, a recipient group waits its turn without taking a slot. */
      perNexthopConcurrency: z.number().int().min(1).default(10),
      /** TCP connect to a next hop. */
      connectTimeout: timerDuration.prefault('30s'),
      /** From the connect to the end of the session set-up (greeting, EHLO/LHLO, STARTTLS). */
      greetingTimeout: timerDuration.prefault('60s'),
      /**
       * The rewrite step, built on the queue thread: a module (path relative to the
       * working directory, absolute, or a package name) exporting
       * `createRewriteStep(options)`. Unset: every recipient gets the original bytes.
       */
      rewrite: z
        .strictObject({
          module: z.string().min(1),
          options: z.record(z.string(), z.unknown()).default({}),
        })
        .optional(),
    })
    .prefault({}),
  routes: routes.default([]),
  admin: z
    .strictObject({
      enabled: z.boolean().default(true),
      listen: listen(9025),
    })
    .prefault({}),
  imp: z
    .strictObject({
      /** This gateway's 32-bit internet host number (RFC 753 ihn). */
      ihn: z.number().int().min(-2147483648).max(4294967295).default(2130706433),
      maxDepth: z.number().int().min(4).max(1024).default(64),
      maxBagBytes: size
        .refine((n) => n >= 4 && n <= MAX_BAG_OCTETS, { message: `must be 4 to ${MAX_BAG_OCTETS} (4 + 2^24-1 octets, the largest bag RFC 753 allows)` })
        .prefault(MAX_BAG_OCTETS),
      /** Ship bags to imp:// next hops with Appendix B basic compression unless the route says otherwise. */
      compress: z.boolean().default(false),
      /** The acceptor (RFC 753 section 3.7): where peers ship message-bags to this MPM. Unset: no IMP listener. */
      listen: z.strictObject({ host: host.default('127.0.0.1'), port: port.default(7530) }).optional(),
      /** TLS on the IMP listener (TLS from the first octet; IMP has no STARTTLS). */
      tls: z.strictObject({ key: z.string().min(1), cert: z.string().min(1) }).optional(),
      maxConnections: z.number().int().min(1).default(100),
      maxConnectionsPerIp: z.number().int().min(1).default(20),
      /** Messages one bag may hold: each one beyond in a received bag gets a class 2 error reply; shipped bags hold at most this many. */
      maxMessagesPerBag: z.number().int().min(1).max(65535).default(10000),
      /**
       * Octets the DELIVERs of one received bag may make the acceptor spool, all copies
       * together (messages sharing one document are each a copy); each beyond gets a class 2 reply.
       */
      maxBagSpoolBytes: size.refine((n) => n >= 1, { message: 'must be at least 1' }).prefault('1GiB'),
      /** A shipping unit must arrive whole within this of its first octet (else a class 2 error and close); 0 = no limit. */
      bagTimeout: timerDuration.prefault('5m'),
      /** A connection with no shipping unit in progress is closed after this long; 0 = never. */
      idleTimeout: timerDuration.prefault('5m'),
      /** DELIVERs of one bag being spooled at once. */
      acceptConcurrency: z.number().int().min(1).max(1024).default(16),
      /** Peers (CIDR) whose DELIVERs for domains that are not local are relayed (local-net and foreign messages). */
      trustedPeers: z.array(cidr).default([]),
      /**
       * Where other MPMs listen, by ihn: an end-to-end reply (RFC 753 Example 2 view 4) is
       * passed back to the MPM its mailbox names through this map. An ihn not listed is
       * not passed back to (the hop's own answer stands).
       */
      mpms: z.array(mpmAddress).default([]),
    })
    .prefault({}),
  multilingual: multilingualSchema,
  pod: podSchema,
  log: z
    .strictObject({
      level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
    })
    .prefault({}),
}).superRefine((c, ctx) => {
  for (const issue of [...crossFieldIssues(c), ...listenerPortIssues(c), ...rewriteStepIssues(c)]) ctx.addIssue({ code: 'custom', path: issue.path, message: issue.message });
});

/** A gateway has one rewrite step: a `queue.rewrite` module or the multilingual step, not both (start would refuse). */
function rewriteStepIssues(c: { queue: { rewrite?: unknown }; multilingual: Parameters<typeof multilingualOnBecause>[0] }): Array<{ path: string[]; message: string }> {
  const on = c.queue.rewrite && c.multilingual ? multilingualOnBecause(c.multilingual) : undefined;
  if (!on) return [];
  return [{ path: ['queue', 'rewrite'], message: `the multilingual step is on (${on}); a gateway has one rewrite step: remove queue.rewrite or turn multilingual off` }];
}

interface ListenAt {
  host: string;
  port: number;
}

/** Whether two listeners on one port would collide: the same address, or a wildcard covering the other's. */
function sameSocket(a: string, b: string): boolean {
  if (a === b) return true;
  // `::` is dual-stack (it takes every IPv4 address too); `0.0.0.0` takes every IPv4 address.
  if (a === '::' || b === '::') return true;
  const other = a === '0.0.0.0' ? b : b === '0.0.0.0' ? a : undefined;
  return other !== undefined && isIP(other) !== 6;
}

/**
 * The listeners this config starts must not share a port: the second would fail at start
 * with EADDRINUSE, after `config check` had passed. Port 0 (any free port) never collides.
 */
export function listenerPortIssues(c: {
  smtp: { listen: ListenAt };
  admin: { enabled: boolean; listen: ListenAt };
  imp: { listen?: ListenAt | undefined };
  pod: { publisher: { enabled: boolean; listen: ListenAt } };
}): Array<{ path: string[]; message: string }> {
  const listeners: Array<{ key: string; at: ListenAt }> = [
    { key: 'smtp.listen', at: c.smtp.listen },
    ...(c.admin.enabled ? [{ key: 'admin.listen', at: c.admin.listen }] : []),
    ...(c.imp.listen ? [{ key: 'imp.listen', at: c.imp.listen }] : []),
    ...(c.pod.publisher.enabled ? [{ key: 'pod.publisher.listen', at: c.pod.publisher.listen }] : []),
  ].filter((l) => typeof l.at?.port === 'number' && typeof l.at.host === 'string' && l.at.port !== 0);
  const show = (at: ListenAt) => `${isIP(at.host) === 6 ? `[${at.host}]` : at.host}:${at.port}`;
  const issues: Array<{ path: string[]; message: string }> = [];
  listeners.forEach((l, i) => {
    const first = listeners.slice(0, i).find((e) => e.at.port === l.at.port && sameSocket(e.at.host, l.at.host));
    if (first) {
      issues.push({ path: [...l.key.split('.'), 'port'], message: `${show(l.at)} is also ${first.key} (${show(first.at)}): give each listener its own port` });
    }
  });
  return issues;
}

/** Checks that relate keys to each other; each issue names the key to change. */
export function crossFieldIssues(c: {
  queue: { retryInitial: number; retryMax: number };
  smtp: { maxMessageBytes: number };
  imp: { maxBagBytes: number };
  routes: ReadonlyArray<{ nexthop?: { url?: unknown } } | undefined>;
}): Array<{ path: string[]; message: string }> {
  const issues: Array<{ path: string[]; message: string }> = [];
  if (typeof c.queue.retryInitial === 'number' && typeof c.queue.retryMax === 'number' && c.queue.retryInitial > c.queue.retryMax) {
    issues.push({ path: ['queue', 'retryInitial'], message: `${c.queue.retryInitial} ms is above queue.retryMax (${c.queue.retryMax} ms)` });
  }
  // Mail routed over IMP travels in one bag per message: a larger message could be
  // accepted with 250 and then never be delivered.
  // A route that failed its own checks is still in the list here (as zod's NEVER): skip it.
  if (c.routes.some((r) => typeof r?.nexthop?.url === 'string' && r.nexthop.url.startsWith('imp:'))) {
    const problem = impCarriageProblem(c.smtp.maxMessageBytes, c.imp.maxBagBytes);
    if (problem) issues.push({ path: ['smtp', 'maxMessageBytes'], message: problem });
  }
  return issues;
}

export type Config = z.output<typeof configSchema>;
export type ConfigInput = z.input<typeof configSchema>;
