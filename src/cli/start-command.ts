import { loadConfig, resolveConfigPath } from '../config/load.js';
import { parseCommandArgs, writeOutput, type Command } from './command.js';

export const startCommand: Command = {
  name: 'start',
  summary: 'start the gateway in the foreground',
  usage: 'mailbag start [--config FILE]\n\nThe config file is --config, else $MAILBAG_CONFIG, else the embedded config/default.yaml.',
  async run(argv, io) {
    const { values } = parseCommandArgs(argv, { config: { type: 'string', short: 'c' } }, false);
    const file = resolveConfigPath(values.config, io.env);
    const config = loadConfig(file);
    await writeOutput(
      io,
      `mailbag: config ${file} is valid (SMTP would listen on ${config.smtp.listen.host}:${config.smtp.listen.port}); ` +
        'the SMTP gateway is not built yet, exiting\n',
    );
  },
};
