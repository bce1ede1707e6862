import { CliError, parseCommandArgs, readInput, UsageError, writeOutput, type CliIO, type Command } from './command.js';
import { LanguagePreferenceError, parseLanguagePreferences, type LanguagePreference } from '../mime/language-range.js';
import { analyseMultilingual, isRewritable, partSubject, rewriteMultilingual, selectLanguagePart, type RewriteMode } from '../mime/multilingual.js';
import { parseMimeTree } from '../mime/tree.js';
import { oneLine } from './one-line.js';

function preferences(value: string | undefined): LanguagePreference[] {
  if (value === undefined || value.trim() === '') return [];
  try {
    return parseLanguagePreferences(value);
  } catch (err) {
    if (err instanceof LanguagePreferenceError) throw new UsageError(`--lang: ${err.message}`);
    throw err;
  }
}

const selectCommand: Command = {
  name: 'select',
  summary: 'write a multilingual message as a recipient with these languages would get it',
  usage: `mailbag lang select --lang LIST [--mode select|reorder] [FILE.eml]

Writes the message to stdout as the rewrite would deliver it (unchanged when it is not
multipart/multilingual or has a structure that is delivered as it is), and the decision
to stderr. LIST is an Accept-Language style priority list: "es-MX, es;q=0.8, en;q=0.3"
(q=0: never). Reads stdin when FILE is omitted.

options:
  --lang LIST      the recipient's language priority list (empty: no preference)
  --mode MODE      select (default): the chosen part becomes the message;
                   reorder: the chosen part moves first after the preface`,
  async run(argv: string[], io: CliIO) {
    const { values, positionals } = parseCommandArgs(argv, { lang: { type: 'string' }, mode: { type: 'string' } });
    if (positionals.length > 1) throw new UsageError('at most one FILE');
    if (values.lang === undefined) throw new UsageError('--lang is required (use --lang "" for no preference)');
    const mode = (values.mode ?? 'select') as RewriteMode;
    if (mode !== 'select' && mode !== 'reorder') throw new UsageError(`--mode must be select or reorder, not ${JSON.stringify(values.mode)}`);
    const prefs = preferences(values.lang);
    const bytes = await readInput(positionals[0], io);
    const analysis = analyseMultilingual(parseMimeTree(bytes));
    if (!isRewritable(analysis)) {
      io.stderr.write(`unchanged: ${analysis.reason}\n`);
      await writeOutput(io, bytes);
      return 0;
    }
    const choice = selectLanguagePart(analysis, prefs);
    const p = choice.part;
    // Tags, translation type and From are the sender's text: escaped, so no control sequence reaches the terminal.
    io.stderr.write(oneLine(`part ${p.index}: ${p.tags.join(', ')}; translation ${p.translationType ?? 'unspecified'}; ${choice.why}`) + '\n');
    if (p.fromMismatch) io.stderr.write(oneLine(`warning: part ${p.index} has a From (${p.from ?? ''}) that differs from the top-level From; the top-level From is kept`) + '\n');
    await writeOutput(io, rewriteMultilingual(analysis, p, mode));
    return 0;
  },
};

const partsCommand: Command = {
  name: 'parts',
  summary: 'list the language parts of a multilingual message',
  usage: `mailbag lang parts [--json] [FILE.eml]

One line per part: index, Content-Language tags, translation type, Subject (tab-separated;
control characters in them shown as \\t, \\xHH).
Reads stdin when FILE is omitted. Exits 1 when the message is not one mailbag rewrites.`,
  async run(argv: string[], io: CliIO) {
    const { values, positionals } = parseCommandArgs(argv, { json: { type: 'boolean' } });
    if (positionals.length > 1) throw new UsageError('at most one FILE');
    const analysis = analyseMultilingual(parseMimeTree(await readInput(positionals[0], io)));
    if (!isRewritable(analysis)) throw new CliError(`not rewritable: ${analysis.reason}`, 'ERR_MAILBAG_NOT_MULTILINGUAL');
    const parts = [...analysis.languageParts, ...(analysis.independent ? [analysis.independent] : [])].map((p) => ({
      index: p.index,
      tags: p.tags,
      translationType: p.translationType ?? null,
      subject: partSubject(p) ?? null,
      independent: p === analysis.independent,
      fromMismatch: p.fromMismatch,
    }));
    if (values.json) return void (await writeOutput(io, JSON.stringify(parts, null, 2) + '\n'));
    const lines = parts.map((p) => [String(p.index), p.tags.join(','), p.translationType ?? '-', p.subject ?? '-'].map(oneLine).join('\t'));
    await writeOutput(io, ['PART\tLANGUAGE\tTRANSLATION\tSUBJECT', ...lines].join('\n') + '\n');
    return 0;
  },
};

/** `mailbag lang ...`: multipart/multilingual tools that work on files, offline. */
export const langCommand: Command = {
  name: 'lang',
  summary: 'multipart/multilingual tools: list the parts, show what a recipient would get',
  usage: 'mailbag lang <command> [options]',
  subcommands: [partsCommand, selectCommand],
};
