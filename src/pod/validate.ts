import ajvDraft04, { type ErrorObject, type ValidateFunction } from 'ajv-draft-04';
import { maillogSchema } from './maillog-schema.js';
import { messageSchema } from './message-schema.js';

// ajv 8 dropped draft-04 from its core; ajv-draft-04 is the ajv project's own class for it
// (draft-04 `id` instead of `$id`, boolean exclusiveMaximum). Formats are not registered:
// neither schema relies on them.
// The package is CommonJS; under Node's ESM interop its class is the `default` member.
const ajv = new ajvDraft04.default({ allErrors: false, strict: false });

const validators = {
  maillog: ajv.compile(maillogSchema),
  message: ajv.compile(messageSchema),
} as const satisfies Record<string, ValidateFunction>;

/** `undefined` when `event` is valid, else the first problem (`/sm/pri must be integer`). */
export function schemaProblem(kind: 'message' | 'maillog', event: unknown): string | undefined {
  const validate = validators[kind];
  if (validate(event)) return undefined;
  const e = validate.errors?.[0] as ErrorObject | undefined;
  if (!e) return 'does not match the schema';
  const where = e.instancePath || '(event)';
  return `${where} ${e.message ?? 'is invalid'}`;
}
