// The RFC 753 data model shared by the codec (elements, messages, bags) and
// everything built on it (MIME conversion, IMP routing). Pure types, no I/O.

/** Element codes (RFC 753 section 3.2 and Appendix A). NOP=0, PAD=1 per the prose and RFC 759. */
export const ElementCode = {
  NOP: 0,
  PAD: 1,
  BOOLEAN: 2,
  INDEX: 3,
  INTEGER: 4,
  BITSTR: 5,
  TEXT: 6,
  LIST: 7,
  PROPLIST: 8,
  ENCRYPT: 9,
} as const;
export type ElementCode = (typeof ElementCode)[keyof typeof ElementCode];

export interface NopElement {
  type: 'nop';
}
export interface PadElement {
  type: 'pad';
  /** The dummy octets (a view of the input when decoded). */
  data: Uint8Array;
}
export interface BooleanElement {
  type: 'boolean';
  value: boolean;
}
export interface IndexElement {
  type: 'index';
  /** 0..65535 */
  value: number;
}
export interface IntegerElement {
  type: 'integer';
  /** Signed 32-bit, two's complement on the wire. */
  value: number;
}
export interface BitstrElement {
  type: 'bitstr';
  /** Number of significant bits; data holds ceil(bits/8) octets, zero-padded on the right. */
  bits: number;
  data: Uint8Array;
}
export interface TextElement {
  type: 'text';
  /** 7-bit ASCII octets (a view of the input when decoded). */
  data: Uint8Array;
}
export interface ListElement {
  type: 'list';
  items: Element[];
}
export interface PropPair {
  /** ASCII name, 0..255 octets. */
  name: string;
  /** One complete encoded element (TEXT, INTEGER, ...), at most 65,535 octets encoded. */
  value: Element;
}
export interface ProplistElement {
  type: 'proplist';
  pairs: PropPair[];
}
export interface EncryptElement {
  type: 'encrypt';
  /** Opaque encrypted octets. */
  data: Uint8Array;
}

export type Element =
  | NopElement
  | PadElement
  | BooleanElement
  | IndexElement
  | IntegerElement
  | BitstrElement
  | TextElement
  | ListElement
  | ProplistElement
  | EncryptElement;

/** Transaction identifier: LIST(tn INDEX, ihn INTEGER). */
export interface Tid {
  tn: number;
  ihn: number;
}

/** Command types (RFC 753 section 3.4). */
export const CommandType = { REQUEST: 1, REPLY: 2, ALARM: 3, ALARM_RESPONSE: 4 } as const;
export type CommandType = (typeof CommandType)[keyof typeof CommandType];

/** Error classes (RFC 753 section 3.4). */
export const ErrorClass = {
  OK: 0,
  PARTIAL: 1,
  RESOURCES_UNAVAILABLE: 2,
  USER_ERROR: 3,
  MPM_RECOVERABLE: 4,
  MPM_FATAL: 5,
  USER_ABORT: 6,
} as const;

/** command := LIST(mailbox, stamp, type, operation, arguments, error-list) */
export interface ImpCommand {
  mailbox: ProplistElement;
  /** ihns of the MPMs that handled the message, oldest first. */
  stamp: number[];
  type: number;
  operation: string;
  arguments: ListElement;
  /** Empty for requests; LIST(error-class INDEX, error-string TEXT) for replies. */
  errorList: ListElement;
}

export interface ImpDocument {
  header: ProplistElement;
  body: ListElement;
}

/**
 * A message with every shared portion resolved. `document` is absent when the
 * document-list is an empty LIST (as in RFC 753 Example 2 views 3 and 4).
 */
export interface ImpMessage {
  tid: Tid;
  command: ImpCommand;
  document?: ImpDocument;
  /**
   * Set by the decoder: which portions arrived as share references (content=1)
   * and the tid each pointed at. The portion itself is resolved above (the same
   * object as in the message it was shared from). `encodeBag` ignores it unless
   * asked to `sharing: 'preserve'`.
   */
  shared?: SharedPortions;
}

/** The tid a shared portion referred to (RFC 753 section 3.6). */
export interface SharedPortions {
  command?: Tid;
  header?: Tid;
  body?: Tid;
}
