import { mkdirSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';

/** `/a/b/c` -> `/`, `/a`, `/a/b`, `/a/b/c`. */
export function ancestry(dir: string): string[] {
  const chain: string[] = [];
  for (let d = resolve(dir); ; d = dirname(d)) {
    chain.unshift(d);
    if (dirname(d) === d) return chain;
  }
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

/**
 * mkdir -p, one level at a time. Node 20's `mkdirSync(..., { recursive: true })` spins
 * forever when the kernel answers ENOENT for a directory whose parent exists (under /proc
 * or /sys). Throws the error of the level that failed (`syscall: 'mkdir'`, its `path`).
 */
export function makeDirSync(dir: string): void {
  for (const d of ancestry(dir)) {
    try {
      mkdirSync(d);
    } catch (err) {
      // An existing directory may answer EEXIST, or EACCES when its parent is not writable.
      if (!isDirectory(d)) throw err;
    }
  }
}
