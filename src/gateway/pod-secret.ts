import { readFileSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { dirname } from 'node:path';
import { makeDirSync } from '../make-dir.js';

/** The publisher's token secret cannot be used. */
export class PodSecretError extends Error {
  readonly code = 'ERR_POD_SECRET';
  constructor(message: string) {
    super(message);
    this.name = 'PodSecretError';
  }
}

/**
 * The HS256 secret the publisher verifies tokens with and `mailbag pod token` signs
 * them with: the file's trimmed content. A missing file is created with 32 random bytes
 * (hex), mode 0600, exclusively, so two processes starting at once agree on one secret;
 * `onCreated` is called when this call made it.
 */
export function loadOrCreateSecret(path: string, onCreated?: () => void): Buffer {
  try {
    makeDirSync(dirname(path));
    writeFileSync(path, randomBytes(32).toString('hex') + '\n', { mode: 0o600, flag: 'wx' });
    onCreated?.();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw new PodSecretError(`cannot create ${path}: ${(err as Error).message}`);
  }
  let text: string;
  try {
    text = readFileSync(path, 'utf8').trim();
  } catch (err) {
    throw new PodSecretError(`cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  if (text.length < 16) throw new PodSecretError(`${path} holds no usable secret (at least 16 characters)`);
  return Buffer.from(text, 'utf8');
}
