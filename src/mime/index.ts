// Public API of the lossless MIME structure layer (pure, Buffer-based, no I/O).
export {
  collectChunks,
  fieldValue,
  headerValue,
  parseMimeTree,
  serializeMimeTree,
  type MimeBody,
  type MimeHeaderField,
  type MimeLeafBody,
  type MimeMessageBody,
  type MimeMultipartBody,
  type MimeNode,
  type MimePart,
  type ParseMimeOptions,
} from './tree.js';
export { parseContentType, type ContentType } from './content-type.js';
