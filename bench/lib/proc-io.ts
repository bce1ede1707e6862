import { readFileSync } from 'node:fs';

/**
 * Bytes a Linux process caused to be written to storage (`write_bytes` of /proc/PID/io:
 * counted when it dirties page-cache pages, so file writes, the SQLite WAL and its
 * checkpoints; not sockets). Undefined elsewhere.
 */
export function storageWriteBytes(pid: number): number | undefined {
  try {
    const m = /^write_bytes: (\d+)$/m.exec(readFileSync(`/proc/${pid}/io`, 'latin1'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** User and system CPU seconds of a Linux process (all its threads). */
export function userSystemSeconds(pid: number): { user: number; system: number } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { user: Number(f[11]) / 100, system: Number(f[12]) / 100 };
  } catch {
    return undefined;
  }
}
