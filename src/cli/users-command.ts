import { readFile } from 'node:fs/promises';
import { addressKey } from '../delivery/address.js';
import { formatLanguagePreferences, LanguagePreferenceError, parseLanguagePreferences } from '../mime/language-range.js';
import { CliError, parseCommandArgs, UsageError, writeOutput, type Command } from './command.js';
import { CsvError, parseCsv } from './users/csv.js';
import { withCliStore } from './store-access.js';

const CONFIG = { config: { type: 'string', short: 'c' } } as const;


function keyOf(address: string | undefined): string {
  if (address === undefined) throw new UsageError('expected an ADDRESS');
  const key = addressKey(address.trim());
  if (key === undefined) throw new UsageError(`'${address}' is not an address (local@domain)`);
  return key;
}

/** Validated and written in its canonical form (most preferred first). */
function canonicalLanguages(value: string): string {
  return formatLanguagePreferences(parseLanguagePreferences(value));
}

const set: Command = {
  name: 'set',
  summary: "store a recipient's language preferences",
  usage: `mailbag users set ADDRESS --lang LIST [--config FILE]

LIST is an Accept-Language style priority list, e.g. "es-MX, es;q=0.8, en;q=0.3"; q=0 means never.`,
  async run(argv, io) {
    const { values, positionals } = parseCommandArgs(argv, { ...CONFIG, lang: { type: 'string' } });
    if (positionals.length !== 1) throw new UsageError('expected exactly one ADDRESS');
    const address = keyOf(positionals[0]);
    if (values.lang === undefined) throw new UsageError('--lang is required');
    let languages: string;
    try {
      languages = canonicalLanguages(values.lang);
    } catch (err) {
      if (err instanceof LanguagePreferenceError) throw new UsageError(`--lang: ${err.message}`);
      throw err;
    }
    await withCliStore(values.config, io, async (store) => store.users.set(address, languages));
    await writeOutput(io, `${address}\t${languages}\n`);
  },
};

const get: Command = {
  name: 'get',
  summary: "print a recipient's language preferences",
  usage: 'mailbag users get ADDRESS [--config FILE]',
  async run(argv, io) {
    const { values, positionals } = parseCommandArgs(argv, CONFIG);
    if (positionals.length !== 1) throw new UsageError('expected exactly one ADDRESS');
    const address = keyOf(positionals[0]);
    const row = await withCliStore(values.config, io, async (store) => store.users.get(address));
    if (!row) throw new CliError(`no language preferences stored for ${address}`, 'ERR_MAILBAG_UNKNOWN_USER');
    await writeOutput(io, `${row.address}\t${row.languages}\n`);
  },
};

const list: Command = {
  name: 'list',
  summary: 'list every stored recipient and their languages',
  usage: 'mailbag users list [--config FILE] [--json]',
  async run(argv, io) {
    const { values, positionals } = parseCommandArgs(argv, { ...CONFIG, json: { type: 'boolean' } });
    if (positionals.length) throw new UsageError(`unexpected argument '${positionals[0]}'`);
    const rows = await withCliStore(values.config, io, async (store) => store.users.list());
    if (values.json) return void (await writeOutput(io, JSON.stringify(rows.map((r) => ({ address: r.address, languages: r.languages, updatedAt: r.updated_at }))) + '\n'));
    await writeOutput(io, rows.map((r) => `${r.address}\t${r.languages}\n`).join(''));
  },
};

const del: Command = {
  name: 'delete',
  summary: "remove a recipient's language preferences",
  usage: 'mailbag users delete ADDRESS [--config FILE]',
  async run(argv, io) {
    const { values, positionals } = parseCommandArgs(argv, CONFIG);
    if (positionals.length !== 1) throw new UsageError('expected exactly one ADDRESS');
    const address = keyOf(positionals[0]);
    const removed = await withCliStore(values.config, io, async (store) => store.users.delete(address));
    if (!removed) throw new CliError(`no language preferences stored for ${address}`, 'ERR_MAILBAG_UNKNOWN_USER');
  },
};

const importCmd: Command = {
  name: 'import',
  summary: 'store language preferences from a CSV file (address,languages), all rows or none',
  usage: `mailbag users import FILE.csv [--config FILE]

Each row is ADDRESS,LANGUAGES; quote LANGUAGES when it holds commas:
  alice@example.test,"es-MX, es;q=0.8, en;q=0.3"
A first row "address,languages" is a header and skipped. Any bad row names its line and
nothing is imported; existing addresses are overwritten.`,
  async run(argv, io) {
    const { values, positionals } = parseCommandArgs(argv, CONFIG);
    if (positionals.length !== 1) throw new UsageError('expected exactly one FILE.csv');
    const file = positionals[0]!;
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      throw new CliError(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    const rows: { address: string; languages: string }[] = [];
    const seen = new Map<string, number>();
    try {
      const records = parseCsv(text);
      for (const [n, r] of records.entries()) {
        if (n === 0 && r.fields[0]?.toLowerCase() === 'address') continue;
        if (r.fields.length !== 2) throw new CsvError(`expected 2 fields (address,languages), found ${r.fields.length}`, r.line);
        const address = addressKey(r.fields[0]!);
        if (!address) throw new CsvError(`'${r.fields[0]}' is not an address`, r.line);
        const first = seen.get(address);
        if (first !== undefined) throw new CsvError(`${address} already appears on line ${first}`, r.line);
        seen.set(address, r.line);
        try {
          rows.push({ address, languages: canonicalLanguages(r.fields[1]!) });
        } catch (err) {
          if (err instanceof LanguagePreferenceError) throw new CsvError(err.message, r.line);
          throw err;
        }
      }
    } catch (err) {
      if (err instanceof CsvError) throw new CliError(`${file}: ${err.message}; nothing imported`, err.code);
      throw err;
    }
    await withCliStore(values.config, io, async (store) => store.users.setMany(rows));
    await writeOutput(io, `imported ${rows.length} address(es) from ${file}\n`);
  },
};

/** `mailbag users ...`: recipients' language preferences in the store. */
export const usersCommand: Command = {
  name: 'users',
  summary: "recipients' language preferences for multipart/multilingual delivery",
  usage: 'mailbag users <command> [options]',
  subcommands: [set, get, list, del, importCmd],
};
