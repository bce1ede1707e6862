import { existsSync } from 'node:fs';
import { Store, StoreVersionError } from '../store/store.js';
import { loadConfig, resolveConfigPath } from '../config/load.js';
import { CliError, type CliIO } from './command.js';

/**
 * Opens the store for a CLI command. A CLI never migrates an existing store: it may run
 * beside a gateway of another version, whose schema it must not change. A store of
 * another schema version gets one line saying what to do (exit 1). `create`: a missing
 * store is created (and migrated: no gateway can be using it); otherwise it is an error.
 */
export function openStoreForCli(path: string, opts: { create: boolean }): Store {
  if (!existsSync(path)) {
    if (opts.create) return Store.open(path);
    throw new CliError(`no store at ${path} (has the gateway run with this config?)`, 'ERR_MAILBAG_NO_STORE');
  }
  try {
    return Store.openExisting(path);
  } catch (err) {
    if (!(err instanceof StoreVersionError)) throw err;
    if (err.state.version === 0 && !err.newer) {
      throw new CliError(`store ${path} is empty (no schema yet): has the gateway run with this config?`, 'ERR_MAILBAG_EMPTY_STORE');
    }
    const advice = err.newer
      ? 'use the mailbag version that wrote it (or a newer one)'
      : 'stop the gateway and run `mailbag start` (which migrates) or use the matching mailbag version';
    throw new CliError(`${err.message}: ${advice}`, err.code);
  }
}

/**
 * Runs `fn` with the store of the config named by `--config` (or MAILBAG_CONFIG, or the
 * embedded default), a missing store created, and closes it afterwards.
 */
export async function withCliStore<T>(configPath: string | undefined, io: CliIO, fn: (store: Store) => Promise<T>): Promise<T> {
  const config = loadConfig(resolveConfigPath(configPath, io.env));
  const store = openStoreForCli(config.store.path, { create: true });
  try {
    return await fn(store);
  } finally {
    store.close();
  }
}
