import { CliError, UsageError, parseCommandArgs, readInput, writeOutput, type Command } from '../command.js';
import { bagMessages, decodeElement, printNotation, ShippingUnitDecoder, type Element } from '../../imp/index.js';
import { impLimits, onePositional, withImpErrors } from './common.js';

const KIND = ['no compression', 'basic compression'];

/** `mailbag imp dump [FILE]`: a bag, or a stream of shipping units, printed in RFC 753 notation. */
export const dumpCommand: Command = {
  name: 'dump',
  summary: 'print a message-bag or shipping unit(s) in RFC 753 notation',
  usage: [
    'mailbag imp dump [FILE] [--raw] [--width N] [--config FILE]',
    '',
    'Reads FILE (or stdin). Input starting with octet 7 is a bare bag; 0 followed by 7, or 1,',
    'is a shipping unit (several may follow one another). A comment line says which.',
    'Error offsets are in the input for a bare bag, in the decompressed bag for a unit.',
    '  --raw        print any element tree, without checking the message-bag structure',
    '  --width N    wrap the notation at N columns (default 78)',
    '  --config F   take limits (imp.maxDepth, imp.maxBagBytes) from this config file',
  ].join('\n'),
  async run(argv, io) {
    const { values, positionals } = parseCommandArgs(argv, {
      raw: { type: 'boolean' },
      width: { type: 'string' },
      config: { type: 'string', short: 'c' },
    });
    const width = values.width === undefined ? 78 : Number(values.width);
    if (!Number.isInteger(width) || width < 20) throw new UsageError(`--width must be an integer >= 20, got ${values.width}`);
    const file = onePositional(positionals);
    const limits = impLimits(values.config, io);
    const input = await readInput(file, io);

    const out = await withImpErrors(() => {
      const print = (bag: Buffer, comment: string): string => {
        const root: Element = decodeElement(bag, limits);
        let note = '';
        if (!values.raw) note = `, ${bagMessages(root).length} message(s)`;
        return `# ${comment}${note}\n${printNotation(root, { width })}`;
      };
      if (input.length === 0) throw new CliError('empty input: expected a message-bag or shipping unit');
      if (input[0] === 7 || values.raw && input[0]! > 1) return print(input, `message-bag, ${input.length} octets`);
      // A compressed unit's second octet is a compression-unit flag, so only type 0 can be checked for the 7.
      if ((input[0] === 0 && input[1] === 7) || input[0] === 1) {
        const d = new ShippingUnitDecoder(limits);
        const parts = d.push(input).map((u) =>
          print(u.bag, `shipping unit at offset ${u.offset}, ${KIND[u.compression]}: ${u.end - u.offset} octets, bag of ${u.bag.length} octets`),
        );
        d.end();
        return parts.join('\n');
      }
      throw new CliError(
        `input starts with octet ${input[0]}${input.length > 1 ? ` ${input[1]}` : ''}: not a message-bag (7) or shipping unit (0 then 7, or 1)`,
        'ERR_IMP_MESSAGE',
      );
    });
    await writeOutput(io, out);
  },
};
