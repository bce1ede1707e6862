// The multilingual rewrite step: runs on the queue thread for each message, gives every
// recipient the language part that suits them, one copy per chosen part, and records
// each decision in the store. The choice itself is src/mime/multilingual.ts (pure).
import { readFileSync } from 'node:fs';
import { Readable } from 'node:stream';
import type { DNSResolver } from 'mailauth';
import type { Logger } from 'pino';
import type { MultilingualConfig } from '../../config/multilingual-schema.js';
import { parseLanguagePreferences, type LanguagePreference } from '../../mime/language-range.js';
import { planLanguageCopies, type LanguageCopy, type RewriteMode } from '../../mime/multilingual.js';
import { headerValue, parseMimeTree } from '../../mime/tree.js';
import { parseContentType } from '../../mime/content-type.js';
import type { LanguageChoice } from '../../store/multilingual-store.js';
import type { Store } from '../../store/store.js';
import type { MessageRow } from '../../store/queue-store.js';
import { addressKey } from '../address.js';
import type { MessageCopy, RewriteStep } from '../queue.js';
import { domainMatches, domainOf, normaliseDomainPattern } from '../routes.js';
import { arcSealCopy, authenticateReceived, claimsAuthservId, type ArcKey, type ReceivedAuthentication } from './authentication.js';

export interface MultilingualStepContext {
  store: Store;
  logger: Logger;
  /** The gateway's name: the authserv-id of Authentication-Results. */
  hostname: string;
  /** DNS for DKIM and ARC keys (default: the system resolver). */
  resolver?: DNSResolver;
  /** An inner From naming another sender was seen (metric). */
  onFromMismatch?(qid: string): void;
}

type RecipientMode = RewriteMode | 'off';

interface RecipientPlan {
  rcpt: string;
  mode: RecipientMode;
  preferences: readonly LanguagePreference[];
  preferencesText: string;
}

/** The domain settings that apply: the first `domains` key matching the recipient's domain. */
function domainSettings(config: MultilingualConfig, rcpt: string): MultilingualConfig['domains'][string] | undefined {
  const domain = domainOf(rcpt);
  for (const [pattern, settings] of Object.entries(config.domains)) {
    if (domainMatches(normaliseDomainPattern(pattern), domain)) return settings;
  }
  return undefined;
}

async function readAll(copy: MessageCopy): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of copy.open() as AsyncIterable<Buffer>) chunks.push(chunk);
  return Buffer.concat(chunks);
}

/** Cheap first look at the header only: is this multipart/multilingual at all? */
function looksMultilingual(bytes: Buffer): boolean {
  const end = bytes.indexOf('\r\n\r\n');
  const header = parseMimeTree(end === -1 ? bytes : bytes.subarray(0, end + 4));
  const ct = headerValue(header, 'content-type');
  return ct !== undefined && parseContentType(ct).type === 'multipart/multilingual';
}

/**
 * Builds the step from the `multilingual:` config. Recipients whose mode is `off` keep
 * the original bytes; the rest get a copy per chosen part. Anything about the message's
 * structure that cannot be rewritten safely delivers the original, with the reason
 * logged and recorded, never a dropped or half-rewritten message.
 */
export function createMultilingualStep(config: MultilingualConfig, ctx: MultilingualStepContext): RewriteStep {
  const arcKey: ArcKey | undefined = config.arc
    ? { signingDomain: config.arc.domain, selector: config.arc.selector, privateKey: readFileSync(config.arc.privateKeyFile) }
    : undefined;
  const defaults = new Map<string, LanguagePreference[]>();
  const parsedDefault = (text: string) => {
    let list = defaults.get(text);
    if (!list) defaults.set(text, (list = text.trim() === '' ? [] : parseLanguagePreferences(text)));
    return list;
  };

  const planFor = (rcpt: string): RecipientPlan => {
    const settings = domainSettings(config, rcpt);
    const mode = settings?.mode ?? config.mode;
    const key = addressKey(rcpt);
    const stored = key ? ctx.store.users.get(key) : undefined;
    const text = stored?.languages ?? settings?.defaultLanguages ?? config.defaultLanguages;
    return { rcpt, mode, preferences: parsedDefault(text), preferencesText: text };
  };

  return async (message: MessageRow, recipients: string[], original: MessageCopy): Promise<MessageCopy[]> => {
    const plans = recipients.map(planFor);
    const active = plans.filter((p) => p.mode !== 'off');
    if (active.length === 0) return [original];
    if (message.size > config.maxMessageBytes) {
      record(message.qid, active, `larger than multilingual.maxMessageBytes (${config.maxMessageBytes})`);
      return [original];
    }
    const bytes = await readAll(original);
    if (!looksMultilingual(bytes)) return [original];
    const root = parseMimeTree(bytes);
    // The copies get the gateway's own verdict: none that arrived in its name goes with them.
    if (config.verifyDkim) root.header = root.header.filter((f) => !claimsAuthservId(f, ctx.hostname));
    const copies: MessageCopy[] = [];
    const unchanged = plans.filter((p) => p.mode === 'off').map((p) => p.rcpt);
    const choices: LanguageChoice[] = [];
    let received: ReceivedAuthentication | undefined;
    for (const mode of ['select', 'reorder'] as const) {
      const group = active.filter((p) => p.mode === mode);
      if (group.length === 0) continue;
      const plan = planLanguageCopies(root, group, { mode, translationPreference: config.translationPreference });
      if (plan.kind === 'unchanged') {
        ctx.logger.info({ qid: message.qid, reason: plan.reason, rcpts: group.map((p) => p.rcpt) }, 'multilingual: delivered unchanged');
        for (const p of group) choices.push(unchangedChoice(p, plan.reason));
        unchanged.push(...group.map((p) => p.rcpt));
        continue;
      }
      if (config.verifyDkim && !received) received = await authenticateReceived(bytes, { authservId: ctx.hostname, resolver: ctx.resolver ?? defaultResolver });
      for (const copy of plan.copies) {
        copies.push(await finishCopy(copy, received, arcKey));
        if (copy.part.fromMismatch) {
          ctx.logger.warn({ qid: message.qid, part: copy.part.index, innerFrom: copy.part.from, rcpts: copy.recipients.map((r) => r.rcpt) }, 'multilingual: a language part names another sender; the top-level From is kept');
          ctx.onFromMismatch?.(message.qid);
        }
        for (const r of copy.recipients) {
          const p = group.find((g) => g.rcpt === r.rcpt)!;
          choices.push({
            rcpt: r.rcpt,
            mode,
            partIndex: copy.part.index,
            tags: copy.part.tags.join(', '),
            translationType: copy.part.translationType ?? null,
            rule: r.selection.rule,
            why: r.selection.why,
            preferences: p.preferencesText,
            fromMismatch: copy.part.fromMismatch,
            dkim: received ? received.dkim.join(',') || 'none' : null,
          });
        }
      }
    }
    ctx.store.multilingual.recordChoices(message.qid, choices);
    if (unchanged.length) copies.push({ ...original, recipients: unchanged });
    return copies;
  };

  function unchangedChoice(p: RecipientPlan, reason: string): LanguageChoice {
    return { rcpt: p.rcpt, mode: 'unchanged', partIndex: null, tags: null, translationType: null, rule: 'unchanged', why: reason, preferences: p.preferencesText, fromMismatch: false, dkim: null };
  }

  function record(qid: string, group: RecipientPlan[], reason: string): void {
    ctx.logger.info({ qid, reason }, 'multilingual: delivered unchanged');
    ctx.store.multilingual.recordChoices(qid, group.map((p) => unchangedChoice(p, reason)));
  }
}

async function finishCopy(copy: LanguageCopy, received: ReceivedAuthentication | undefined, arcKey: ArcKey | undefined): Promise<MessageCopy> {
  let bytes = received ? Buffer.concat([received.field, copy.bytes]) : copy.bytes;
  if (received && arcKey) bytes = Buffer.concat([await arcSealCopy(bytes, arcKey, received), bytes]);
  const out = bytes;
  return { recipients: copy.recipients.map((r) => r.rcpt), size: out.length, open: () => Readable.from([out]) };
}

const defaultResolver: DNSResolver = async (name, rrtype) => {
  const { promises } = await import('node:dns');
  return (await promises.resolve(name, rrtype)) as string[][] | string[];
};
