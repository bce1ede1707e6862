// The config file of a mailbag gateway a benchmark starts: SMTP on a loopback port with no
// greeting delay and no connection limits in the way, spool and store in `dir`, the given
// routes, admin listener off unless a port is given. Returns the file's path.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface BenchGatewayConfig {
  /** Where the config file, the spool and the store go. */
  dir: string;
  smtpPort: number;
  hostname?: string;
  /** smtp.greetingDelay (ms); default 0. */
  greetingDelay?: number;
  localDomains?: readonly string[];
  /** smtp.maxMessageBytes, as the config writes it (`10MiB`). */
  maxMessageBytes?: string;
  routes: readonly { domain: string; nexthop: string }[];
  /** Enables the admin listener (/metrics) on this port. */
  adminPort?: number;
  /** log.level; default warn. */
  logLevel?: string;
  /** Further top-level sections, as YAML lines (`imp:`, `multilingual:` ...). */
  extra?: readonly string[];
}

export function writeBenchGatewayConfig(c: BenchGatewayConfig): string {
  const file = join(c.dir, 'mailbag.yaml');
  writeFileSync(
    file,
    [
      `gateway: { hostname: ${c.hostname ?? 'bench.mailbag.test'} }`,
      'smtp:',
      `  listen: { host: 127.0.0.1, port: ${c.smtpPort} }`,
      `  greetingDelay: ${c.greetingDelay ?? 0}`,
      `  localDomains: [${(c.localDomains ?? ['example.test']).map((d) => JSON.stringify(d)).join(', ')}]`,
      ...(c.maxMessageBytes ? [`  maxMessageBytes: ${c.maxMessageBytes}`] : []),
      '  maxConnections: 1000',
      '  maxConnectionsPerIp: 1000',
      '  maxConnectionRatePerIp: 0',
      `spool: { dir: ${JSON.stringify(join(c.dir, 'spool'))} }`,
      `store: { path: ${JSON.stringify(join(c.dir, 'mailbag.db'))} }`,
      'routes:',
      ...c.routes.map((r) => `  - { domain: ${JSON.stringify(r.domain)}, nexthop: ${JSON.stringify(r.nexthop)} }`),
      ...(c.extra ?? []),
      c.adminPort !== undefined ? `admin: { enabled: true, listen: { host: 127.0.0.1, port: ${c.adminPort} } }` : 'admin: { enabled: false }',
      `log: { level: ${c.logLevel ?? 'warn'} }`,
      '',
    ].join('\n'),
  );
  return file;
}
