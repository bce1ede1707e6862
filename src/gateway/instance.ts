import { mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type { Config } from '../config/schema.js';
import { InstanceLock, InstanceLockedError } from '../store/instance-lock.js';
import { explainOpenError } from '../store/open-error.js';

export interface InstanceLocks {
  release(): void;
}

/** The spool's lock file; the store's is `<store.path>.lock`. */
export const SPOOL_LOCK_NAME = 'gateway.lock';

/**
 * One gateway per spool and per store: both are locked before either is touched, so a
 * second gateway (same ./var, or sharing just one of them) refuses to start with one
 * line naming the holder, instead of sweeping the first one's spool files and resuming
 * its attempts in flight. The queue CLI takes no lock: it works next to a running
 * gateway.
 */
export function lockInstance(config: Config): InstanceLocks {
  const spoolDir = resolve(config.spool.dir);
  try {
    mkdirSync(spoolDir, { recursive: true });
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw Object.assign(new Error(`cannot create the spool directory ${spoolDir} (${e.code}): create it, writable by the gateway's user, or set spool.dir`), { code: 'ERR_MAILBAG_SPOOL_DIR' });
  }
  let spoolLock: InstanceLock;
  try {
    spoolLock = InstanceLock.acquire(join(spoolDir, SPOOL_LOCK_NAME), `spool ${spoolDir}`);
  } catch (err) {
    if (err instanceof InstanceLockedError) throw err;
    const e = err as NodeJS.ErrnoException;
    throw Object.assign(new Error(`cannot lock the spool directory ${spoolDir} (${e.code ?? e.message}): it must be writable by the gateway's user`), { code: 'ERR_MAILBAG_SPOOL_DIR' });
  }
  try {
    const storePath = resolve(config.store.path);
    try {
      mkdirSync(dirname(storePath), { recursive: true });
    } catch (err) {
      throw explainOpenError(storePath, err);
    }
    let storeLock: InstanceLock;
    try {
      storeLock = InstanceLock.acquire(`${storePath}.lock`, `store ${storePath}`);
    } catch (err) {
      throw err instanceof InstanceLockedError ? err : explainOpenError(storePath, err);
    }
    return {
      release() {
        storeLock.release();
        spoolLock.release();
      },
    };
  } catch (err) {
    spoolLock.release();
    throw err;
  }
}
