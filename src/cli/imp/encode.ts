// `mailbag imp encode`: one RFC 5322/MIME message -> an RFC 753 message-bag (one
// DELIVER per recipient, document shared), or a compressed shipping unit.
import addressparser from 'nodemailer/lib/addressparser';
import { loadConfig, resolveConfigPath } from '../../config/load.js';
import { mimeToBag } from '../../imp/mime/bag.js';
import { TidAllocator } from '../../imp/mime/tid-allocator.js';
import { parseMimeTree, fieldValue } from '../../mime/tree.js';
import { UsageError, parseCommandArgs, readInput, writeOutput, type Command } from '../command.js';
import { onePositional, parseInteger, withImpErrors } from './common.js';

export const impEncodeCommand: Command = {
  name: 'encode',
  summary: 'convert a MIME message (.eml) to an RFC 753 message-bag',
  usage: [
    'mailbag imp encode [--rcpt ADDR]... [--from ADDR] [--compress] [--ihn N] [--tn N] [--config FILE] [FILE.eml] > out.bag',
    '',
    'Reads FILE.eml (stdin when omitted or -) and writes the bag to stdout: one DELIVER',
    'message per recipient, all sharing one document (RFC 753 section 3.6).',
    '',
    'options:',
    '  --rcpt ADDR     envelope recipient (repeatable); without --rcpt the recipients are',
    '                  the addresses in the To and Cc fields (exit 2 if there are none)',
    '  --from ADDR     envelope sender, carried as ENVELOPE-FROM in the document header',
    '  --compress      write a shipping unit with RFC 753 Appendix B basic compression',
    '  --ihn N         this gateway\'s internet host number (default: imp.ihn from the config)',
    '  --tn N          first transaction number (0..65535, default 0)',
    '  --config FILE   configuration file (default: $MAILBAG_CONFIG or config/default.yaml)',
  ].join('\n'),
  async run(argv, io) {
    const { values, positionals } = parseCommandArgs(argv, {
      rcpt: { type: 'string', multiple: true },
      from: { type: 'string' },
      compress: { type: 'boolean' },
      ihn: { type: 'string' },
      tn: { type: 'string' },
      config: { type: 'string', short: 'c' },
    });
    const file = onePositional(positionals);
    const ihn = values.ihn !== undefined ? parseInteger(values.ihn, '--ihn', -2147483648, 4294967295) : loadConfig(resolveConfigPath(values.config, io.env)).imp.ihn;
    const start = values.tn !== undefined ? parseInteger(values.tn, '--tn', 0, 65535) : 0;
    const raw = await readInput(file, io);
    const recipients = values.rcpt?.length ? values.rcpt.map(rcptAddress) : headerRecipients(raw);
    if (recipients.length === 0) throw new UsageError('no recipients: give --rcpt ADDR, or a message with To or Cc addresses');
    const bag = await withImpErrors(() =>
      mimeToBag(raw, {
        recipients, ihn, tids: new TidAllocator({ ihn, start }), compress: values.compress ?? false,
        ...(values.from !== undefined ? { envelopeFrom: values.from } : {}),
      }),
    );
    await writeOutput(io, bag);
  },
};

/**
 * The address in one --rcpt value: `a@b`, `<a@b>` or `Name <a@b>`. Anything else (empty,
 * no domain, several addresses) is a usage error, so a typo never becomes a mangled mailbox.
 */
function rcptAddress(text: string): string {
  const found = addressparser(text, { flatten: true });
  const address = found.length === 1 ? found[0]!.address : '';
  const at = address.lastIndexOf('@');
  if (at <= 0 || at === address.length - 1) throw new UsageError(`--rcpt ${JSON.stringify(text)} is not one mail address (local@domain)`);
  return address;
}

/** Addresses in the top-level To and Cc fields, in order, without duplicates. */
function headerRecipients(raw: Buffer): string[] {
  const root = parseMimeTree(raw, { maxDepth: 0 });
  const out: string[] = [];
  for (const field of root.header) {
    if (field.name === null || !/^(to|cc)$/i.test(field.name)) continue;
    for (const a of addressparser(fieldValue(field), { flatten: true })) {
      if (a.address && !out.includes(a.address)) out.push(a.address);
    }
  }
  return out;
}
