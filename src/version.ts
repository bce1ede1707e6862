import { readFileSync } from 'node:fs';

/** mailbag's version (package.json), for what reports it: the CLI, PoD events' `pps.version`. */
export const VERSION = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;
