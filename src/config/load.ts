import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseDocument } from 'yaml';
import { configSchema, type Config } from './schema.js';

/** The embedded default, shipped in the package. */
export const DEFAULT_CONFIG_PATH = fileURLToPath(new URL('../../config/default.yaml', import.meta.url));

export class ConfigError extends Error {
  readonly code = 'ERR_MAILBAG_CONFIG';
  constructor(
    message: string,
    readonly file: string,
  ) {
    super(message);
    this.name = 'ConfigError';
  }
}

/** Which file to load: an explicit --config, then MAILBAG_CONFIG, then the embedded default. */
export function resolveConfigPath(explicit?: string, env: NodeJS.ProcessEnv = process.env): string {
  return explicit ?? env['MAILBAG_CONFIG'] ?? DEFAULT_CONFIG_PATH;
}

/** Validates an already-parsed object; errors name the key path (`smtp.listen.port`) and the problem. */
export function validateConfig(raw: unknown, file = '<inline>'): Config {
  const result = configSchema.safeParse(raw ?? {});
  if (result.success) return result.data;
  const lines = result.error.issues.map((issue) => {
    const path = issue.path.length ? issue.path.map(String).join('.') : '(top level)';
    return `${path}: ${issue.message}`;
  });
  throw new ConfigError(`invalid config ${file}: ${lines.join('; ')}`, file);
}

export function loadConfig(file: string): Config {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read config ${file}: ${(err as Error).message}`, file);
  }
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    // prettyErrors puts an excerpt of the file after `at line L, column C:`; the CLI prints the first line.
    throw new ConfigError(`invalid YAML in ${file}: ${doc.errors[0]!.message.split('\n')[0]!.replace(/:$/, '')}`, file);
  }
  return validateConfig(doc.toJS(), file);
}
