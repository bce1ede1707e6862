// Reading message structure out of decoded element trees. A structure error
// names the element path and remembers the offending element so the bag
// decoder can turn it into a byte offset (found only when an error happens,
// so the happy path pays nothing for it).
import { ImpError, ImpErrorCode, type ImpErrorCode as Code } from './errors.js';
import type { Element, ListElement, ProplistElement } from './types.js';

export class StructureFault extends Error {
  constructor(
    readonly code: Code,
    message: string,
    readonly path: string,
    readonly target: Element,
  ) {
    super(message);
  }
}

export function fault(el: Element, path: string, message: string, code: Code = ImpErrorCode.MESSAGE): never {
  throw new StructureFault(code, message, path, el);
}

const NAME: Record<Element['type'], string> = {
  nop: 'NOP',
  pad: 'PAD',
  boolean: 'BOOLEAN',
  index: 'INDEX',
  integer: 'INTEGER',
  bitstr: 'BITSTR',
  text: 'TEXT',
  list: 'LIST',
  proplist: 'PROPLIST',
  encrypt: 'ENCRYPT',
};

export function expectType<T extends Element['type']>(el: Element, type: T, path: string): Extract<Element, { type: T }> {
  if (el.type !== type) fault(el, path, `expected ${NAME[type]}, found ${NAME[el.type]}`);
  return el as Extract<Element, { type: T }>;
}

/** A LIST's items with NOP and PAD left out (RFC 753: both are ignored). */
export function significantItems(list: ListElement): Element[] {
  const items = list.items;
  for (let i = 0; i < items.length; i++) {
    const t = items[i]!.type;
    if (t === 'nop' || t === 'pad') return items.filter((e) => e.type !== 'nop' && e.type !== 'pad');
  }
  return items;
}

/** A LIST of exactly `labels.length` significant items. */
export function fields(el: Element, path: string, labels: readonly string[]): Element[] {
  const list = expectType(el, 'list', path);
  const items = significantItems(list);
  if (items.length !== labels.length)
    fault(el, path, `expected LIST( ${labels.join(', ')} ) of ${labels.length} items, found ${items.length}`);
  return items;
}

export function indexValue(el: Element, path: string): number {
  return expectType(el, 'index', path).value;
}

export function integerValue(el: Element, path: string): number {
  return expectType(el, 'integer', path).value;
}

export function booleanValue(el: Element, path: string): boolean {
  return expectType(el, 'boolean', path).value;
}

export function proplistOf(el: Element, path: string): ProplistElement {
  return expectType(el, 'proplist', path);
}

/** Offset of `target` inside `root` (which starts at `base`), or undefined if it is not there. */
export function offsetOf(root: Element, target: Element, base: number): number | undefined {
  if (root === target) return base;
  if (root.type === 'list') {
    let p = base + 6;
    for (const item of root.items) {
      const found = offsetOf(item, target, p);
      if (found !== undefined) return found;
      p += sizeOf(item);
    }
  } else if (root.type === 'proplist') {
    let p = base + 5;
    for (const pair of root.pairs) {
      const found = offsetOf(pair.value, target, p + 3 + pair.name.length);
      if (found !== undefined) return found;
      p += 3 + pair.name.length + sizeOf(pair.value);
    }
  }
  return undefined;
}

/** Encoded size of a decoded (hence valid) element, without re-validating it. */
export function sizeOf(el: Element): number {
  switch (el.type) {
    case 'nop':
      return 1;
    case 'boolean':
      return 2;
    case 'index':
      return 3;
    case 'integer':
      return 5;
    case 'pad':
    case 'text':
    case 'encrypt':
    case 'bitstr':
      return 4 + el.data.length;
    case 'list': {
      let n = 6;
      for (const item of el.items) n += sizeOf(item);
      return n;
    }
    case 'proplist': {
      let n = 5;
      for (const pair of el.pairs) n += 3 + pair.name.length + sizeOf(pair.value);
      return n;
    }
  }
}

/** Converts a fault raised while reading the element at `base` into a located ImpError. */
export function locate(err: unknown, root: Element, base: number): unknown {
  if (!(err instanceof StructureFault)) return err;
  return new ImpError(err.code, err.message, { offset: offsetOf(root, err.target, base), path: err.path });
}

/** Runs `fn`, turning a structure fault into an ImpError (with path, without offset). */
export function withPathErrors<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof StructureFault) throw new ImpError(err.code, err.message, { path: err.path });
    throw err;
  }
}
