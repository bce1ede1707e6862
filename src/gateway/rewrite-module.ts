import { isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Config } from '../config/schema.js';
import type { RewriteStep, RewriteStepFactory } from '../delivery/rewrite.js';

/** The configured rewrite module cannot be loaded or does not export a step factory. */
export class RewriteModuleError extends Error {
  readonly code = 'ERR_MAILBAG_REWRITE_MODULE';
}

/**
 * Builds the rewrite step from `queue.rewrite` on the thread that runs the queue: the
 * step is a function and never crosses threads, so a configured rewrite never moves
 * the queue onto the SMTP thread. A path (`./x.js`, `/x.js`) is resolved against the
 * working directory; anything else is imported as a package.
 */
export async function loadRewriteStep(config: Config['queue']['rewrite']): Promise<RewriteStep | undefined> {
  if (!config) return undefined;
  const spec = config.module;
  const target = spec.startsWith('.') || isAbsolute(spec) ? pathToFileURL(resolve(spec)).href : spec;
  let mod: { createRewriteStep?: unknown };
  try {
    mod = (await import(target)) as { createRewriteStep?: unknown };
  } catch (err) {
    throw new RewriteModuleError(`queue.rewrite.module '${spec}' cannot be loaded: ${(err as Error).message}`);
  }
  if (typeof mod.createRewriteStep !== 'function') {
    throw new RewriteModuleError(`queue.rewrite.module '${spec}' does not export a function createRewriteStep(options)`);
  }
  const step: unknown = await (mod.createRewriteStep as RewriteStepFactory)(config.options);
  if (typeof step !== 'function') throw new RewriteModuleError(`createRewriteStep of '${spec}' did not return a function`);
  return step as RewriteStep;
}
