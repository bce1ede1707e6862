// Typed errors for the IMP codec. Every failure on bad input is an ImpError
// with a stable `code`, the byte `offset` where it was found (when bytes were
// involved) and, for message-structure errors, the element `path`.

export const ImpErrorCode = {
  /** The input ends inside an element, a shipping unit or a compression unit. */
  TRUNCATED: 'ERR_IMP_TRUNCATED',
  /** An element's count runs past the end of the element that contains it. */
  COUNT_OVERRUN: 'ERR_IMP_COUNT_OVERRUN',
  /** A LIST item count or PROPLIST pair count disagrees with its octet count. */
  ITEM_COUNT: 'ERR_IMP_ITEM_COUNT',
  /** An element code outside 0..9, or a compression type outside 0..1. */
  UNKNOWN_CODE: 'ERR_IMP_UNKNOWN_CODE',
  /** LIST/PROPLIST nesting deeper than `maxDepth`. */
  TOO_DEEP: 'ERR_IMP_TOO_DEEP',
  /** A bag (compressed or not) larger than `maxBagBytes`. */
  TOO_LARGE: 'ERR_IMP_TOO_LARGE',
  /** A share reference (content=1) to a tid not seen earlier in the bag. */
  SHARE_REF: 'ERR_IMP_SHARE_REF',
  /** An octet >= 0x80 in a TEXT element or a PROPLIST name. */
  TEXT_8BIT: 'ERR_IMP_TEXT_8BIT',
  /** A value the format cannot carry (too long for its count field, out of range). Encoder side. */
  LIMIT: 'ERR_IMP_LIMIT',
  /** An element with a value its type does not allow (BOOLEAN other than 0/1, BITSTR padding length). */
  BAD_VALUE: 'ERR_IMP_BAD_VALUE',
  /** Octets left over after the element, bag or shipping unit should have ended. */
  TRAILING_DATA: 'ERR_IMP_TRAILING_DATA',
  /** Well-formed elements that do not make the message structure of RFC 753 section 3.6. */
  MESSAGE: 'ERR_IMP_MESSAGE',
  /** Text in the RFC 753 notation that does not parse. */
  NOTATION: 'ERR_IMP_NOTATION',
} as const;
export type ImpErrorCode = (typeof ImpErrorCode)[keyof typeof ImpErrorCode];

export interface ImpErrorDetails {
  /** Byte offset in the input (or, for the notation parser, character offset). */
  offset?: number;
  /** Element path for structure errors, e.g. `message[2].command.stamp[0]`. */
  path?: string;
  /** 1-based line for notation errors. */
  line?: number;
}

export class ImpError extends Error {
  readonly code: ImpErrorCode;
  readonly offset: number | undefined;
  readonly path: string | undefined;
  readonly line: number | undefined;
  /** The message without the code/offset/path prefix. */
  readonly reason: string;

  constructor(code: ImpErrorCode, message: string, details: ImpErrorDetails = {}) {
    const where = [
      details.offset !== undefined ? `at offset ${details.offset}` : '',
      details.line !== undefined ? `(line ${details.line})` : '',
      details.path !== undefined ? `in ${details.path}` : '',
    ]
      .filter(Boolean)
      .join(' ');
    super(`${code}${where ? ' ' + where : ''}: ${message}`);
    this.name = 'ImpError';
    this.code = code;
    this.offset = details.offset;
    this.path = details.path;
    this.line = details.line;
    this.reason = message;
  }

  /** The same error with its element path re-rooted: `element...` becomes `prefix...`. */
  withPathPrefix(prefix: string): ImpError {
    const rest = this.path?.startsWith('element') ? this.path.slice('element'.length) : this.path ? `.${this.path}` : '';
    return new ImpError(this.code, this.reason, { offset: this.offset, line: this.line, path: prefix + rest });
  }
}

export function isImpError(err: unknown): err is ImpError {
  return err instanceof ImpError;
}
