// Shared plumbing for the `mailbag imp` subcommands.
import { loadConfig, resolveConfigPath } from '../../config/load.js';
import { parseDuration } from '../../config/units.js';
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

/**
 * `--timeout`: a bare number is seconds (what one types on a command line), else a duration
 * with its unit (`500ms`, `30s`, `2m`). Returns milliseconds; 30 s when not given.
 */
export function parseTimeoutOption(text: string | undefined): number {
  if (text === undefined) return 30_000;
  const ms = /^\s*\d+(?:\.\d+)?\s*$/.test(text) ? Math.round(Number(text) * 1000) : parseDuration(text);
  if (ms === undefined || ms <= 0) throw new UsageError(`--timeout must be a positive number of seconds or a duration (30, 30s, 2m), got ${JSON.stringify(text)}`);
  return ms;
}
