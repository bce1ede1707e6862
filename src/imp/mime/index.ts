// Public API of the MIME <-> RFC 753 conversion (docs/imp-mime.md).
export { bagToMime, mimeToBag, type MimeFromBag, type MimeToBagOptions } from './bag.js';
export { impMessageToMime, mailboxAddress, type MimeFromImp } from './from-imp.js';
export { MAX_MIME_DEPTH, mimeToImpDocument, mimeToImpMessages, recipientMailbox, type MimeDocumentOptions, type MimeToImpOptions } from './to-imp.js';
export { TidAllocator, type TidAllocatorOptions } from './tid-allocator.js';
export { formatImpDate, formatRfc5322Date, impToRfc5322Date, parseImpDate, parseRfc5322Date, rfc5322ToImpDate, type LocalDate } from './date.js';
