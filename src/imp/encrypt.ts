// ENCRYPT detection: encrypted portions are never shared (RFC 753 section 3.6).
import type { Element } from './types.js';

export function containsEncrypt(el: Element): boolean {
  if (el.type === 'encrypt') return true;
  if (el.type === 'list') return el.items.some(containsEncrypt);
  if (el.type === 'proplist') return el.pairs.some((p) => containsEncrypt(p.value));
  return false;
}
