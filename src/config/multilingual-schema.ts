import { z } from 'zod';
import { parseLanguagePreferences } from '../mime/language-range.js';
import { parseSize } from './units.js';

const languages = z.string().superRefine((v, ctx) => {
  if (v.trim() === '') return;
  try {
    parseLanguagePreferences(v);
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: (err as Error).message });
  }
});

const mode = z.enum(['off', 'select', 'reorder']);

const domain = z
  .string()
  .regex(/^(\*\.)?[A-Za-z0-9\u0080-\uffff](?:[A-Za-z0-9\u0080-\uffff-]*[A-Za-z0-9\u0080-\uffff])?(?:\.[A-Za-z0-9\u0080-\uffff](?:[A-Za-z0-9\u0080-\uffff-]*[A-Za-z0-9\u0080-\uffff])?)*$/, {
    message: 'must be a domain or *.suffix',
  });

const size = z.union([z.string(), z.number()]).transform((v, ctx) => {
  const n = parseSize(v);
  if (n === undefined) {
    ctx.addIssue({ code: 'custom', message: `not a size: ${JSON.stringify(v)}` });
    return z.NEVER;
  }
  return n;
});

/**
 * `multilingual:` — per-recipient rewriting of multipart/multilingual messages
 * (docs/multilingual.md). Off unless `mode` is set.
 */
export const multilingualSchema = z
  .strictObject({
    /** off: pass through; select: the chosen part becomes the message; reorder: it moves first. */
    mode: mode.default('off'),
    /** The priority list for recipients with no stored preference ("" = none: the zxx or first part). */
    defaultLanguages: languages.default(''),
    /** Per recipient domain (`example.test` or `*.example.test`): mode and default languages. */
    domains: z.record(domain, z.strictObject({ mode: mode.optional(), defaultLanguages: languages.optional() })).default({}),
    /** Translation types, most preferred first, for parts that match equally well. */
    translationPreference: z.array(z.string().regex(/^[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+$/).transform((s) => s.toLowerCase())).min(1).default(['original', 'human', 'automated']),
    /** Larger messages are delivered unchanged (the rewrite holds a message in memory). */
    maxMessageBytes: size.prefault('25MiB'),
    /** Verify DKIM and ARC before rewriting and add Authentication-Results (RFC 8601). */
    verifyDkim: z.boolean().default(true),
    /** ARC-seal every rewritten copy (RFC 8617) with this key. */
    arc: z.strictObject({ domain: z.string().min(1), selector: z.string().min(1), privateKeyFile: z.string().min(1) }).optional(),
  })
  .prefault({});

export type MultilingualConfig = z.output<typeof multilingualSchema>;

/**
 * Why the multilingual step is on (the global mode or a domain's mode is not `off`), as
 * `multilingual.mode select`; undefined while it is off.
 */
export function multilingualOnBecause(config: { mode: string; domains: Record<string, { mode?: string | undefined }> }): string | undefined {
  if (config.mode !== 'off') return `multilingual.mode ${config.mode}`;
  const on = Object.entries(config.domains).find(([, d]) => d.mode !== undefined && d.mode !== 'off');
  return on ? `multilingual.domains.${on[0]}.mode ${on[1].mode}` : undefined;
}
