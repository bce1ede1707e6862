// Public API of the RFC 753 codec. Add names here; do not rename them.
export * from './types.js';
export { ImpError, ImpErrorCode, isImpError, type ImpErrorDetails } from './errors.js';
export * from './limits.js';
export { encodeElement, encodedSize } from './element-encode.js';
export { decodeElement, decodeElementAt, toBuffer } from './element-decode.js';
export { textElement, textValue } from './text.js';
export { elementsEqual } from './equal.js';
export {
  acknowledgeCommand,
  cancelCommand,
  canceledCommand,
  commandElement,
  deliverCommand,
  normalizeIhn,
  probeCommand,
  proplist,
  proplistGet,
  readArguments,
  readCommandError,
  responseCommand,
  tidElement,
  tidKey,
  type CommandArguments,
  type CommandError,
} from './message.js';
export { bagMessages, containsEncrypt, decodeBag, decodeBagEntries, encodeBag, type BagEntry, messageElement, type DecodeBagOptions, type EncodeBagOptions } from './bag.js';
export {
  compressBasic,
  CompressionType,
  decodeShippingUnit,
  decompressBasic,
  encodeShippingUnit,
  ShippingUnitDecoder,
  type DecompressOptions,
  type ShippingUnit,
  type ShippingUnitDecoderOptions,
} from './compression.js';
export { parseNotation, parseNotationAll, printNotation, type ParseOptions, type PrintOptions } from './notation.js';
export {
  acknowledgeMessage,
  canceledMessage,
  ImpErrorString,
  mpmMailbox,
  NO_TID,
  notImplementedMessage,
  isEndToEndAnswer,
  passedBackReply,
  readReply,
  REASON_OK,
  replyAddressee,
  replyTrail,
  responseMessage,
  type ReadReply,
  type Replier,
  type ReplyTo,
} from './replies.js';
