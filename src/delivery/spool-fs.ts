import { close, fsync, open, rename, unlink, writev } from 'node:fs';
import { promisify } from 'node:util';

/**
 * The file-system calls that make a spool file durable, as one replaceable object: the
 * durability tests pass a recording (or slowed-down) implementation and check the order
 * of calls, without patching node:fs for the whole process. The callback API on plain
 * fds: cheaper per call than FileHandle, and the accept path makes several per message.
 */
export interface SpoolFs {
  open(path: string, flags: string, mode?: number): Promise<number>;
  writev(fd: number, buffers: readonly NodeJS.ArrayBufferView[]): Promise<{ bytesWritten: number }>;
  fsync(fd: number): Promise<void>;
  close(fd: number): Promise<void>;
  rename(from: string, to: string): Promise<void>;
  unlink(path: string): Promise<void>;
}

export const nodeSpoolFs: SpoolFs = {
  open: promisify(open) as SpoolFs['open'],
  writev: promisify(writev) as SpoolFs['writev'],
  fsync: promisify(fsync),
  close: promisify(close),
  rename: promisify(rename),
  unlink: promisify(unlink),
};
