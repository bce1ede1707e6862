// What a config needs from the machine it runs on, checked before anything starts:
// listen hosts that resolve, listeners' TLS key and certificate that load, spool, store and
// Maildir paths that can be used. `config check` and
// `start` run the same checks, so what one accepts the other starts with; only `start`
// creates the directories.
import { constants } from 'node:fs';
import { access, readFile, stat, statfs } from 'node:fs/promises';
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { createSecureContext } from 'node:tls';
import { createPrivateKey } from 'node:crypto';
import { dirname, resolve } from 'node:path';
import type { Config } from '../config/schema.js';
import { sharedTokenIssues } from '../config/pod-tokens.js';
import { multilingualOnBecause } from '../config/multilingual-schema.js';
import { ancestry, makeDirSync } from '../make-dir.js';
import { CliError } from './command.js';

/** A directory that cannot be created or used; `at` is the path component that failed. */
export class PathError extends Error {
  readonly code = 'ERR_MAILBAG_PATH';
  constructor(
    readonly at: string,
    readonly reason: string,
  ) {
    super(`${reason} at ${at}`);
    this.name = 'PathError';
  }
}

/** mkdir -p (`makeDirSync`); a level that fails is named with why, as a `PathError`. */
export async function makeDir(dir: string): Promise<void> {
  try {
    makeDirSync(dir);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const at = e.path ?? dir;
    const found = await stat(at).catch(() => undefined);
    throw new PathError(at, found ? 'not a directory' : explain(e));
  }
}

// Kernel file systems where mkdir answers ENOENT and nothing can be stored (statfs f_type).
const PSEUDO_FS = new Map<number, string>([
  [0x9fa0, 'procfs'],
  [0x62656572, 'sysfs'],
  [0x64626720, 'debugfs'],
  [0x63677270, 'cgroup2'],
]);

/**
 * Checks that `dir` exists or can be created, without creating it: every existing part
 * is a directory, the deepest existing one is not a kernel file system and (unless
 * `writable` is false) may be written.
 */
async function checkDir(dir: string, writable = true): Promise<void> {
  let deepest = '/';
  for (const d of ancestry(dir)) {
    const found = await stat(d).catch((err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? undefined : err));
    if (found === undefined) break;
    if (found instanceof Error) throw new PathError(d, explain(found));
    if (!found.isDirectory()) throw new PathError(d, 'not a directory');
    deepest = d;
  }
  const fs = await statfs(deepest).catch(() => undefined);
  const pseudo = fs && PSEUDO_FS.get(fs.type);
  if (pseudo) throw new PathError(deepest, `on ${pseudo}, where nothing can be stored`);
  if (!writable) return;
  await access(deepest, constants.W_OK | constants.X_OK).catch((err: NodeJS.ErrnoException) => {
    throw new PathError(deepest, explain(err));
  });
}

function explain(err: NodeJS.ErrnoException): string {
  if (err.code === 'EACCES' || err.code === 'EPERM') return `no permission (${err.code})`;
  if (err.code === 'EROFS') return 'read-only file system (EROFS)';
  return err.code ?? err.message;
}

interface PathCheck {
  key: string;
  value: string;
  dir: string;
  /** start creates it (the spool directory); the store and Maildir roots are only checked. */
  create: boolean;
  /**
   * When to check write permission. The store's own open explains its permission problems
   * at start (what SQLite needs there: the -wal and -shm files); a Maildir root the gateway
   * cannot write defers deliveries, it does not stop the gateway. Both are checked for what
   * would make Node's recursive mkdir hang (a kernel file system) and for a file in the way.
   */
  writable: 'always' | 'config-check' | 'never';
}

function pathsOf(config: Config): PathCheck[] {
  return [
    { key: 'spool.dir', value: config.spool.dir, dir: config.spool.dir, create: true, writable: 'always' },
    { key: 'store.path', value: config.store.path, dir: dirname(resolve(config.store.path)), create: false, writable: 'config-check' },
    ...config.routes.flatMap((r, i): PathCheck[] =>
      r.nexthop.kind === 'maildir' ? [{ key: `routes.${i}.nexthop`, value: r.nexthop.url, dir: r.nexthop.path, create: false, writable: 'never' }] : [],
    ),
    // The publisher creates its secret file (and directory) when missing.
    ...(config.pod.publisher.enabled
      ? [{ key: 'pod.publisher.secretFile', value: config.pod.publisher.secretFile, dir: dirname(resolve(config.pod.publisher.secretFile)), create: false, writable: 'never' } as const]
      : []),
  ];
}

/** The store file itself, when it exists, must be a file mailbag can write. */
async function checkStoreFile(path: string): Promise<void> {
  const found = await stat(path).catch(() => undefined);
  if (!found) return;
  if (!found.isFile()) throw new PathError(resolve(path), 'not a file');
  await access(path, constants.R_OK | constants.W_OK).catch((err: NodeJS.ErrnoException) => {
    throw new PathError(resolve(path), explain(err));
  });
}

async function checkListenHost(key: string, host: string, resolveHost: (host: string) => Promise<unknown>): Promise<string | undefined> {
  if (isIP(host)) return undefined;
  try {
    await resolveHost(host);
    return undefined;
  } catch (err) {
    return `${key}: cannot resolve ${JSON.stringify(host)} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`;
  }
}

/** The TLS key and certificate of each listener that has them: what its start would load. */
function tlsFilesOf(config: Config): Array<{ key: string; tls: { key: string; cert: string } }> {
  const out: Array<{ key: string; tls: { key: string; cert: string } }> = [];
  if (config.smtp.tls) out.push({ key: 'smtp.tls', tls: config.smtp.tls });
  if (config.imp.listen && config.imp.tls) out.push({ key: 'imp.tls', tls: config.imp.tls });
  if (config.pod.publisher.enabled && config.pod.publisher.tls) out.push({ key: 'pod.publisher.tls', tls: config.pod.publisher.tls });
  return out;
}

/** Reads both files and builds the TLS context from them, as the listener's start would. */
async function checkTlsFiles(key: string, tls: { key: string; cert: string }): Promise<string | undefined> {
  const read = async (which: 'key' | 'cert'): Promise<Buffer | string> => {
    try {
      return await readFile(tls[which]);
    } catch (err) {
      return `${key}.${which}: ${tls[which]} is unusable: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`;
    }
  };
  const [k, c] = [await read('key'), await read('cert')];
  if (typeof k === 'string') return k;
  if (typeof c === 'string') return c;
  try {
    createSecureContext({ key: k, cert: c });
    return undefined;
  } catch (err) {
    return `${key}: ${tls.key} and ${tls.cert} are unusable: ${(err as Error).message}`;
  }
}

/** The ARC signing key the multilingual step loads when it is built (on the queue thread, at start). */
async function checkArcKey(config: Config): Promise<string | undefined> {
  const arc = config.multilingual.arc;
  if (!arc || !multilingualOnBecause(config.multilingual)) return undefined;
  const key = 'multilingual.arc.privateKeyFile';
  let pem: Buffer;
  try {
    pem = await readFile(arc.privateKeyFile);
  } catch (err) {
    return `${key}: ${arc.privateKeyFile} is unusable: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`;
  }
  try {
    createPrivateKey(pem);
    return undefined;
  } catch (err) {
    return `${key}: ${arc.privateKeyFile} is not a private key: ${(err as Error).message}`;
  }
}

/** Why the config would accept no mail at all, if it would not. */
export function noMailWarnings(config: Config): string[] {
  const warnings: string[] = [];
  if (config.routes.length === 0) warnings.push('routes is empty: every recipient will be refused (550 5.1.2 no route)');
  else if (config.smtp.localDomains.length === 0 && config.smtp.trustedNetworks.length === 0 && !config.smtp.auth) {
    warnings.push('no smtp.localDomains, smtp.trustedNetworks or smtp.auth: every recipient will be refused (550 5.7.1 relay denied)');
  }
  return warnings;
}

export interface PreflightOptions {
  /** Create the spool and store directories (start); otherwise only check they could be. */
  create: boolean;
  /** Resolves a listen host name (tests pass their own; default dns.lookup). */
  resolveHost?: (host: string) => Promise<unknown>;
  /**
   * Where start reads PoD stream tokens named by `tokenEnv` (start: its own environment):
   * streams whose variables hold one token are refused. Absent (config check): the schema's
   * comparison of token values and variable names only.
   */
  env?: NodeJS.ProcessEnv;
}

/**
 * Runs every environment check; throws a CliError naming the config file, the key and the
 * path of each problem, resolves to warnings (a config that works but accepts no mail).
 */
export async function preflight(config: Config, file: string, opts: PreflightOptions): Promise<string[]> {
  const problems: string[] = [];
  for (const [key, host] of [
    ['smtp.listen.host', config.smtp.listen.host],
    ...(config.admin.enabled ? [['admin.listen.host', config.admin.listen.host] as const] : []),
    ...(config.imp.listen ? [['imp.listen.host', config.imp.listen.host] as const] : []),
    ...(config.pod.publisher.enabled ? [['pod.publisher.listen.host', config.pod.publisher.listen.host] as const] : []),
  ] as const) {
    const problem = await checkListenHost(key, host, opts.resolveHost ?? ((h) => lookup(h)));
    if (problem) problems.push(problem);
  }
  for (const { key, tls } of tlsFilesOf(config)) {
    const problem = await checkTlsFiles(key, tls);
    if (problem) problems.push(problem);
  }
  if (opts.env) for (const issue of sharedTokenIssues(config.pod.streams, opts.env)) problems.push(`pod.streams.${issue.stream}.${issue.key}: ${issue.message}`);
  const arcProblem = await checkArcKey(config);
  if (arcProblem) problems.push(arcProblem);
  for (const p of pathsOf(config)) {
    try {
      const atStart = opts.create;
      if (atStart && p.create) await makeDir(p.dir);
      await checkDir(p.dir, p.writable === 'always' || (p.writable === 'config-check' && !atStart));
      if (p.key === 'store.path' && !atStart) await checkStoreFile(p.value);
    } catch (err) {
      if (!(err instanceof PathError)) throw err;
      problems.push(`${p.key}: ${p.value} is unusable: ${err.message}`);
    }
  }
  if (problems.length) throw new CliError(`${file}: ${problems.join('; ')}`, 'ERR_MAILBAG_PREFLIGHT');
  return noMailWarnings(config);
}
