// Shared plumbing for the `mailbag imp` subcommands.
import { loadConfig, resolveConfigPath } from '../../config/load.js';
import { CliError, UsageError, type CliIO } from '../command.js';
import { ImpError, type DecodeLimits } from '../../imp/index.js';

/** Codec limits from the config file (imp.maxDepth, imp.maxBagBytes). */
export function impLimits(configFile: string | undefined, io: CliIO): Required<DecodeLimits> {
  const config = loadConfig(resolveConfigPath(configFile, io.env));
  return { maxDepth: config.imp.maxDepth, maxBagBytes: config.imp.maxBagBytes };
}

/** Runs `fn`, turning codec errors into one-line CLI failures (exit 1) that keep the error code. */
export async function withImpErrors<T>(fn: () => Promise<T> | T): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof ImpError) throw new CliError(err.message, err.code);
    throw err;
  }
}

export function onePositional(positionals: string[]): string | undefined {
  if (positionals.length > 1) throw new UsageError(`expected at most one FILE, got ${positionals.length}`);
  return positionals[0];
}

/** An integer option within [min, max]; anything else is a usage error. */
export function parseInteger(text: string, option: string, min: number, max: number): number {
  const n = Number(text);
  if (!/^-?\d+$/.test(text.trim()) || n < min || n > max) throw new UsageError(`${option} must be an integer ${min}..${max}, got ${JSON.stringify(text)}`);
  return n;
}
