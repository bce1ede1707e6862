import { isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Logger } from 'pino';
import { multilingualOnBecause, type MultilingualConfig } from '../config/multilingual-schema.js';
import type { Config } from '../config/schema.js';
import type { QueueEvents } from '../delivery/queue.js';
import type { RewriteStep, RewriteStepFactory } from '../delivery/rewrite/step.js';
import type { Store } from '../store/store.js';

/** The configured rewrite step cannot be built (module missing, two steps configured). */
export class RewriteModuleError extends Error {
  readonly code = 'ERR_MAILBAG_REWRITE_MODULE';
}

/** The multilingual step is on when the global mode or any domain's mode is not `off`. */
function multilingualOn(config: MultilingualConfig): boolean {
  return multilingualOnBecause(config) !== undefined;
}

/**
 * The rewrite step of the queue, built on the thread that runs the queue: the built-in
 * multilingual step when the `multilingual:` section turns it on, or the module named
 * by `queue.rewrite`; never both (a message has one rewrite step). Undefined: every
 * recipient gets the original bytes.
 */
export async function buildRewriteStep(config: Config, ctx: { store: Store; logger: Logger; events?: QueueEvents }): Promise<RewriteStep | undefined> {
  const multilingual = multilingualOn(config.multilingual);
  if (multilingual && config.queue.rewrite) {
    throw new RewriteModuleError('queue.rewrite and the multilingual step are both configured; a gateway has one rewrite step');
  }
  if (multilingual) {
    // loaded only when used: its MIME, DKIM and ARC dependencies take a while to import
    const { createMultilingualStep } = await import('../delivery/rewrite/multilingual-step.js');
    return createMultilingualStep(config.multilingual, {
      store: ctx.store,
      logger: ctx.logger,
      hostname: config.gateway.hostname,
      onFromMismatch: () => ctx.events?.fromMismatch?.(),
    });
  }
  return loadRewriteStep(config.queue.rewrite);
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
