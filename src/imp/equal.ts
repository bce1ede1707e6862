// Structural equality of element trees (payload views compared by content).
import type { Element } from './types.js';

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(a, b) === 0;
}

/** True when `a` and `b` encode to the same bytes. */
export function elementsEqual(a: Element, b: Element): boolean {
  if (a.type !== b.type) return false;
  switch (a.type) {
    case 'nop':
      return true;
    case 'boolean':
    case 'index':
    case 'integer':
      return a.value === (b as typeof a).value;
    case 'pad':
    case 'text':
    case 'encrypt':
      return bytesEqual(a.data, (b as typeof a).data);
    case 'bitstr':
      return a.bits === (b as typeof a).bits && bytesEqual(a.data, (b as typeof a).data);
    case 'list': {
      const bi = (b as typeof a).items;
      if (a.items.length !== bi.length) return false;
      for (let i = 0; i < bi.length; i++) if (!elementsEqual(a.items[i]!, bi[i]!)) return false;
      return true;
    }
    case 'proplist': {
      const bp = (b as typeof a).pairs;
      if (a.pairs.length !== bp.length) return false;
      for (let i = 0; i < bp.length; i++) {
        if (a.pairs[i]!.name !== bp[i]!.name || !elementsEqual(a.pairs[i]!.value, bp[i]!.value)) return false;
      }
      return true;
    }
  }
}
