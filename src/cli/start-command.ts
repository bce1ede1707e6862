import { loadConfig, resolveConfigPath } from '../config/load.js';
import { startGateway } from '../gateway/gateway.js';
import { CliError, parseCommandArgs, type Command } from './command.js';
import { preflight } from './preflight.js';

/** A listener that cannot bind: the port is taken, privileged, or the address is not this host's. */
const LISTEN_ERRORS = new Set(['EADDRINUSE', 'EACCES', 'EADDRNOTAVAIL']);

export const startCommand: Command = {
  name: 'start',
  summary: 'start the gateway in the foreground',
  usage:
    'mailbag start [--config FILE]\n\nThe config file is --config, else $MAILBAG_CONFIG, else the embedded config/default.yaml.\n' +
    'Logs JSON lines to stdout; stops gracefully on SIGTERM or SIGINT.',
  async run(argv, io) {
    const { values } = parseCommandArgs(argv, { config: { type: 'string', short: 'c' } }, false);
    const file = resolveConfigPath(values.config, process.env);
    const config = loadConfig(file);
    for (const w of await preflight(config, file, { create: true, env: process.env })) io.stderr.write(`mailbag start: warning: ${w}\n`);
    let gateway;
    try {
      gateway = await startGateway(config);
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      if (e.code && LISTEN_ERRORS.has(e.code)) throw new CliError(`cannot listen: ${e.message}`, 'ERR_MAILBAG_LISTEN');
      throw new CliError(e.message, e.code ?? 'ERR_MAILBAG_START');
    }
    const g = gateway;
    // Stay subscribed while stopping: `npm start` forwards the signal it gets, and a
    // shell's `kill %1` (or Ctrl-C) also reaches this process directly, so the same stop
    // request often arrives twice; a second one must not end the graceful stop.
    let stopRequested = false;
    let onSignal = () => undefined as void;
    const stopped = new Promise<void>((resolve) => {
      onSignal = () => {
        if (stopRequested) return;
        stopRequested = true;
        g.stop().then(resolve, resolve);
      };
    });
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
    await stopped;
    process.removeListener('SIGTERM', onSignal);
    process.removeListener('SIGINT', onSignal);
    return 0;
  },
};
