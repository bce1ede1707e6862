// multipart/multilingual (RFC 8255, and draft-ietf-slim-multilangcontent-05 before it):
// finding the preface, the language parts and the language-independent part, choosing
// the part for a recipient's language priority list, and rewriting the message for
// delivery. Pure functions over the lossless MIME tree: what is not rewritten keeps its
// exact bytes.

import addressparser from 'nodemailer/lib/addressparser';
import { basicFilterMatches, lookupFallbacks, type LanguagePreference } from './language-range.js';
import { fieldValue, headerValue, serializeMimeTree, type MimeHeaderField, type MimeNode, type MimePart } from './tree.js';

/** One language message part (or the language-independent one). */
export interface LanguagePart {
  /** Position among the multipart's parts (0 is the preface). */
  index: number;
  /** Content-Language tags as written (`es-MX`, `fr`). */
  tags: string[];
  /** Lower-cased translation type: RFC 8255's Content-Translation-Type, or the draft's parameter. */
  translationType: string | undefined;
  /** The inner message's Subject field, raw (undefined when it has none). */
  subject: MimeHeaderField | undefined;
  /** True when the inner From names another address than the top-level From (RFC 8255 section 10). */
  fromMismatch: boolean;
  /** The inner message's From value, when it has one. */
  from: string | undefined;
}

export interface MultilingualMessage {
  root: MimeNode;
  languageParts: LanguagePart[];
  /** The `zxx` part, when there is one (it is the last part). */
  independent: LanguagePart | undefined;
}

/** Why a message is delivered unchanged: not multilingual, or a structure mailbag will not rewrite. */
export interface NotRewritable {
  reason: string;
  /** False when the message is simply not multipart/multilingual. */
  multilingual: boolean;
}

const MESSAGE_TYPES = new Set(['message/rfc822', 'message/global']);

/** Splits a Content-Language value into tags and the draft's `translation-type` parameter. */
export function parseContentLanguage(value: string): { tags: string[]; translationType: string | undefined } {
  const clean = value.replace(/\([^()]*\)/g, ' ');
  const semi = clean.indexOf(';');
  const list = semi === -1 ? clean : clean.slice(0, semi);
  const tags = list
    .split(',')
    .map((t) => t.trim())
    .filter((t) => t !== '');
  let translationType: string | undefined;
  if (semi !== -1) {
    const m = /(?:^|;)\s*translation-type\s*=\s*"?([^";\s]+)"?/i.exec(clean.slice(semi));
    if (m) translationType = m[1]!.toLowerCase();
  }
  return { tags, translationType };
}

/**
 * The addresses a From names, lower-cased, sorted, one each: parsed as RFC 5322 address
 * lists, so a display name that looks like an address (`"<ceo@bank>" <me@evil>`) or a
 * comment is not taken for one.
 */
function addressesOf(from: string): string {
  const found = addressparser(from, { flatten: true }).map((a) => a.address.trim().toLowerCase());
  return [...new Set(found.filter((a) => a !== ''))].sort().join(' ');
}

function hasEightBitHeader(node: MimeNode): boolean {
  return node.header.some((f) => f.raw.some((b) => b >= 0x80));
}

/**
 * Reads the multilingual structure, or says why the message is delivered as it is:
 * not multilingual, no preface, no language parts, parts that are not an unencoded
 * message/rfc822 or message/global, nested multilinguals, 8-bit header fields.
 */
export function analyseMultilingual(root: MimeNode): MultilingualMessage | NotRewritable {
  if (root.contentType !== 'multipart/multilingual') return { reason: 'not multipart/multilingual', multilingual: false };
  const body = root.body;
  if (body.kind !== 'multipart') return { reason: 'multipart/multilingual without a usable boundary', multilingual: true };
  if (body.parts.length === 0) return { reason: 'multipart/multilingual without parts', multilingual: true };
  if (hasEightBitHeader(root)) return { reason: '8-bit bytes in the top-level header', multilingual: true };
  const preface = body.parts[0]!.node;
  if (headerValue(preface, 'content-language') !== undefined) return { reason: 'no multilingual preface (the first part has a Content-Language)', multilingual: true };
  const topFromValue = headerValue(root, 'from');
  const topFrom = topFromValue === undefined ? '' : addressesOf(topFromValue);
  const languageParts: LanguagePart[] = [];
  let independent: LanguagePart | undefined;
  for (let index = 1; index < body.parts.length; index++) {
    const node = body.parts[index]!.node;
    const cl = headerValue(node, 'content-language');
    if (cl === undefined) return { reason: `part ${index} has no Content-Language`, multilingual: true };
    const { tags, translationType: draftType } = parseContentLanguage(cl);
    if (tags.length === 0) return { reason: `part ${index} has an empty Content-Language`, multilingual: true };
    if (!MESSAGE_TYPES.has(node.contentType)) return { reason: `part ${index} is ${node.contentType}, not message/rfc822 or message/global`, multilingual: true };
    if (node.body.kind !== 'message') return { reason: `part ${index} is a transfer-encoded or empty message`, multilingual: true };
    const inner = node.body.node;
    if (inner.contentType === 'multipart/multilingual') return { reason: `part ${index} is itself multipart/multilingual`, multilingual: true };
    if (hasEightBitHeader(node) || hasEightBitHeader(inner)) return { reason: `8-bit bytes in the header of part ${index}`, multilingual: true };
    const typeHeader = headerValue(node, 'content-translation-type');
    const innerFrom = headerValue(inner, 'from');
    const part: LanguagePart = {
      index,
      tags,
      translationType: typeHeader !== undefined ? typeHeader.trim().toLowerCase() || undefined : draftType,
      subject: inner.header.find((f) => f.name?.toLowerCase() === 'subject'),
      // The same addresses, display names aside; an inner From naming none is no match either.
      fromMismatch: innerFrom !== undefined && (topFrom === '' || addressesOf(innerFrom) !== topFrom),
      from: innerFrom,
    };
    const isIndependent = tags.length === 1 && tags[0]!.toLowerCase() === 'zxx';
    if (isIndependent && index === body.parts.length - 1) independent = part;
    else languageParts.push(part);
  }
  if (languageParts.length === 0) return { reason: 'no language message parts', multilingual: true };
  return { root, languageParts, independent };
}

export function isRewritable(a: MultilingualMessage | NotRewritable): a is MultilingualMessage {
  return 'languageParts' in a;
}

export type SelectionRule = 'exact' | 'filter' | 'lookup' | 'wildcard' | 'independent' | 'default';

export interface LanguageSelection {
  part: LanguagePart;
  rule: SelectionRule;
  /** The range (or its lookup fallback) that matched. */
  range: string | undefined;
  /** One line for logs, the store and `mailbag lang select`. */
  why: string;
}

export interface SelectOptions {
  /** Translation types, most preferred first (default original, human, automated). */
  translationPreference?: readonly string[];
}

export const DEFAULT_TRANSLATION_PREFERENCE: readonly string[] = ['original', 'human', 'automated'];

/**
 * Chooses the part for one recipient (RFC 8255 section 4 with RFC 4647 matching). For
 * each range in priority order: basic filtering, then lookup's progressive truncation
 * with each shorter range filtered again; the first range that matches any part wins.
 * Among several matching parts: a tag equal to the range, then the translation-type
 * preference, then document order. `*` matches every language part (not `zxx`). A part
 * whose every tag has quality 0 (tagQuality) is never chosen by a match, nor as the
 * default while another part is left. No match or no preference: the `zxx` part, else the first
 * language part.
 */
export function selectLanguagePart(message: MultilingualMessage, prefs: readonly LanguagePreference[], opts: SelectOptions = {}): LanguageSelection {
  const order = opts.translationPreference ?? DEFAULT_TRANSLATION_PREFERENCE;
  const anyNever = prefs.some((p) => p.q === 0);
  const refused = (part: LanguagePart) => anyNever && part.tags.every((t) => tagQuality(prefs, t) === 0);
  const eligible = message.languageParts.filter((p) => !refused(p));
  const pool = message.independent && !refused(message.independent) ? [...eligible, message.independent] : eligible;
  const rank = (p: LanguagePart) => {
    const i = p.translationType === undefined ? -1 : order.indexOf(p.translationType);
    return i === -1 ? order.length : i;
  };
  const best = (parts: LanguagePart[], range: string) => {
    const exact = (p: LanguagePart) => (p.tags.some((t) => t.toLowerCase() === range) ? 0 : 1);
    return [...parts].sort((a, b) => exact(a) - exact(b) || rank(a) - rank(b) || a.index - b.index)[0]!;
  };
  const describe = (p: LanguagePart) => `part ${p.index} [${p.tags.join(', ')}]${p.translationType ? ` (${p.translationType})` : ''}`;
  for (const pref of prefs) {
    if (pref.q === 0) continue;
    if (pref.range === '*') {
      if (eligible.length === 0) continue;
      const part = best(eligible, '*');
      return { part, rule: 'wildcard', range: '*', why: `"*" matches every language: ${describe(part)}` };
    }
    const [self, ...shorter] = lookupFallbacks(pref.range);
    const direct = pool.filter((p) => p.tags.some((t) => basicFilterMatches(self!, t)));
    if (direct.length) {
      const part = best(direct, self!);
      const rule: SelectionRule = part.tags.some((t) => t.toLowerCase() === self) ? 'exact' : 'filter';
      return { part, rule, range: self, why: `range "${self}" ${rule === 'exact' ? 'equals a tag of' : 'matches (basic filtering)'} ${describe(part)}` };
    }
    for (const fallback of shorter) {
      const hits = pool.filter((p) => p.tags.some((t) => basicFilterMatches(fallback, t)));
      if (hits.length) {
        const part = best(hits, fallback);
        return { part, rule: 'lookup', range: fallback, why: `range "${pref.range}" truncated to "${fallback}" matches ${describe(part)}` };
      }
    }
  }
  const anyPreference = prefs.some((p) => p.q > 0);
  const lead = anyPreference ? 'no part matches the preferences' : 'no language preference known';
  if (message.independent && !refused(message.independent)) {
    return { part: message.independent, rule: 'independent', range: undefined, why: `${lead}: the language-independent part ${message.independent.index}` };
  }
  const part = eligible[0] ?? message.languageParts[0]!;
  return { part, rule: 'default', range: undefined, why: `${lead}: the first language part, ${describe(part)}` };
}

/**
 * The quality a priority list gives a tag, as RFC 3282 defers to RFC 2616 section 14.4:
 * the q of the longest range that matches it (basic filtering), so "es-MX, es;q=0"
 * accepts es-MX; `*` only for a tag no other range matches, and never for `zxx`, which
 * is no language. The same range listed twice counts with its lowest q. Undefined when
 * nothing in the list matches the tag.
 */
function tagQuality(prefs: readonly LanguagePreference[], tag: string): number | undefined {
  let quality: number | undefined;
  let longest = -1;
  let wildcard: number | undefined;
  for (const p of prefs) {
    if (p.range === '*') {
      wildcard = wildcard === undefined ? p.q : Math.min(wildcard, p.q);
      continue;
    }
    if (!basicFilterMatches(p.range, tag)) continue;
    // Ranges matching one tag are prefixes of it, so the longer string is the longer range.
    if (p.range.length > longest) {
      longest = p.range.length;
      quality = p.q;
    } else if (p.range.length === longest) quality = Math.min(quality!, p.q);
  }
  if (quality !== undefined) return quality;
  return tag.toLowerCase() === 'zxx' ? undefined : wildcard;
}

export type RewriteMode = 'select' | 'reorder';

function lineEnding(root: MimeNode): string {
  if (root.headerEnd.length === 1) return '\n';
  const first = root.header[0]?.raw;
  return first && first.length >= 2 && first[first.length - 2] !== 0x0d && first[first.length - 1] === 0x0a ? '\n' : '\r\n';
}

function named(field: MimeHeaderField, name: string): boolean {
  return field.name !== null && field.name.toLowerCase() === name;
}

function isContentField(field: MimeHeaderField): boolean {
  return field.name !== null && field.name.toLowerCase().startsWith('content-');
}

function partNode(message: MultilingualMessage, part: LanguagePart): MimePart {
  const body = message.root.body;
  if (body.kind !== 'multipart') throw new Error('not a multipart');
  return body.parts[part.index]!;
}

/**
 * `select`: the chosen part becomes the message. The top-level header is kept (From,
 * To, Date, Message-ID, Received, DKIM-Signature, ...) except its Content-* fields; the
 * Subject is the part's own when it has one (encoded words as they are); the inner
 * message's Content-* fields and body follow, with a Content-Language naming the part's
 * tags. The inner From is never used.
 */
export function rewriteSelect(message: MultilingualMessage, part: LanguagePart): Buffer {
  const root = message.root;
  const eol = lineEnding(root);
  const wrapper = partNode(message, part).node;
  if (wrapper.body.kind !== 'message') throw new Error('language part is not an encapsulated message');
  const inner = wrapper.body.node;
  const fields: Buffer[] = [];
  // A header-only inner message ends without a line ending (the one before the next
  // delimiter belongs to the delimiter); every field placed here gets one.
  const line = (raw: Buffer) => (raw[raw.length - 1] === 0x0a ? raw : Buffer.concat([raw, Buffer.from(eol)]));
  let subjectPlaced = false;
  let mimeVersion = false;
  for (const f of root.header) {
    if (isContentField(f)) continue;
    if (named(f, 'subject')) {
      if (subjectPlaced) continue;
      fields.push(line(part.subject?.raw ?? f.raw));
      subjectPlaced = true;
      continue;
    }
    if (named(f, 'mime-version')) mimeVersion = true;
    fields.push(f.raw);
  }
  if (!subjectPlaced && part.subject) fields.push(line(part.subject.raw));
  if (!mimeVersion) fields.push(Buffer.from(`MIME-Version: 1.0${eol}`));
  for (const f of inner.header) if (isContentField(f) && !named(f, 'content-language')) fields.push(line(f.raw));
  fields.push(Buffer.from(`Content-Language: ${part.tags.join(', ')}${eol}`));
  const translation = wrapper.header.find((f) => named(f, 'content-translation-type'));
  if (translation) fields.push(translation.raw);
  else if (part.translationType) fields.push(Buffer.from(`Content-Translation-Type: ${part.translationType}${eol}`));
  const body = serializeMimeTree({ ...inner, header: [] });
  return Buffer.concat([...fields, body]);
}

/**
 * `reorder`: the whole multilingual message, the chosen part moved first after the
 * preface. A part whose From names another sender gets the top-level From instead (or
 * none, when the message has no top-level From).
 */
export function rewriteReorder(message: MultilingualMessage, part: LanguagePart): Buffer {
  const root = message.root;
  const body = root.body;
  if (body.kind !== 'multipart') throw new Error('not a multipart');
  const topFrom = root.header.find((f) => named(f, 'from'));
  const parts = body.parts.map((p, i) => {
    const lp = message.languageParts.find((l) => l.index === i) ?? (message.independent?.index === i ? message.independent : undefined);
    if (!lp?.fromMismatch || p.node.body.kind !== 'message') return p;
    const inner = p.node.body.node;
    // Without a top-level From to put in its place, the inner one goes.
    const header = topFrom ? inner.header.map((f) => (named(f, 'from') ? topFrom : f)) : inner.header.filter((f) => !named(f, 'from'));
    return { ...p, node: { ...p.node, body: { kind: 'message' as const, node: { ...inner, header } } } };
  });
  const chosen = parts[part.index]!;
  const eol = Buffer.from(lineEnding(root));
  // A delimiter right after an empty part has no line ending of its own (the one there
  // belongs to the delimiter before); moved behind a part with content, it needs one.
  const ownLine = (p: MimePart): MimePart => (p.delimiter[0] === 0x2d ? { ...p, delimiter: Buffer.concat([eol, p.delimiter]) } : p);
  const reordered = [parts[0]!, ...[chosen, ...parts.slice(1).filter((_, i) => i + 1 !== part.index)].map(ownLine)];
  return serializeMimeTree({ ...root, body: { ...body, parts: reordered } });
}

/** The rewritten bytes for a mode. */
export function rewriteMultilingual(message: MultilingualMessage, part: LanguagePart, mode: RewriteMode): Buffer {
  return mode === 'select' ? rewriteSelect(message, part) : rewriteReorder(message, part);
}

/** The unfolded Subject of a part, for listings (raw text, encoded words as they are). */
export function partSubject(part: LanguagePart): string | undefined {
  return part.subject ? fieldValue(part.subject) : undefined;
}

/** One recipient and the priority list that applies to them (their own, or a default). */
export interface RecipientLanguages {
  rcpt: string;
  preferences: readonly LanguagePreference[];
}

/** A rewritten copy and the recipients who get it, each with the decision behind it. */
export interface LanguageCopy {
  part: LanguagePart;
  bytes: Buffer;
  recipients: { rcpt: string; selection: LanguageSelection }[];
}

export type LanguagePlan =
  | { kind: 'unchanged'; reason: string; multilingual: boolean }
  | { kind: 'split'; message: MultilingualMessage; copies: LanguageCopy[] };

/**
 * Groups recipients by the part they select and rewrites once per group, so recipients
 * who want the same language share one copy. Every recipient lands in exactly one copy.
 */
export function planLanguageCopies(
  root: MimeNode,
  recipients: readonly RecipientLanguages[],
  opts: SelectOptions & { mode: RewriteMode },
): LanguagePlan {
  const analysis = analyseMultilingual(root);
  if (!isRewritable(analysis)) return { kind: 'unchanged', reason: analysis.reason, multilingual: analysis.multilingual };
  const byPart = new Map<number, LanguageCopy>();
  for (const r of recipients) {
    const selection = selectLanguagePart(analysis, r.preferences, opts);
    let copy = byPart.get(selection.part.index);
    if (!copy) {
      copy = { part: selection.part, bytes: rewriteMultilingual(analysis, selection.part, opts.mode), recipients: [] };
      byPart.set(selection.part.index, copy);
    }
    copy.recipients.push({ rcpt: r.rcpt, selection });
  }
  return { kind: 'split', message: analysis, copies: [...byPart.values()] };
}
