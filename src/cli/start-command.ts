import { loadConfig, resolveConfigPath } from '../config/load.js';
import { startGateway } from '../gateway/gateway.js';
import { CliError, parseCommandArgs, type Command } from './command.js';

/** A listener that cannot bind: the port is taken, privileged, or the address is not this host's. */
const LISTEN_ERRORS = new Set(['EADDRINUSE', 'EACCES', 'EADDRNOTAVAIL']);

export const startCommand: Command = {
  name: 'start',
  summary: 'start the gateway in the foreground',
  usage:
    'mailbag start [--config FILE]\n\nThe config file is --config, else $MAILBAG_CONFIG, else the embedded config/default.yaml.\n' +
    'Logs JSON lines to stdout; stops gracefully on SIGTERM or SIGINT.',
  async run(argv) {
    const { values } = parseCommandArgs(argv, { config: { type: 'string', short: 'c' } }, false);
    const file = resolveConfigPath(values.config, process.env);
    const config = loadConfig(file);
    let gateway;
    try {
      gateway = await startGateway(config);
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      if (e.code && LISTEN_ERRORS.has(e.code)) throw new CliError(`cannot listen: ${e.message}`, 'ERR_MAILBAG_LISTEN');
      throw new CliError(e.message, e.code ?? 'ERR_MAILBAG_START');
    }
    const g = gateway;
    await new Promise<void>((resolve) => {
      const onSignal = () => {
        process.removeListener('SIGTERM', onSignal);
        process.removeListener('SIGINT', onSignal);
        g.stop().then(resolve, resolve);
      };
      process.on('SIGTERM', onSignal);
      process.on('SIGINT', onSignal);
    });
    return 0;
  },
};
