import { UsageError, parseCommandArgs, readInput, writeOutput, type Command } from '../command.js';
import { bagMessages, encodeElement, encodeShippingUnit, ImpError, ImpErrorCode, parseNotationAll, type Element } from '../../imp/index.js';
import { impLimits, onePositional, withImpErrors } from './common.js';

/** LIST( LIST( INDEX, INTEGER ), ... ): the shape of a message, as opposed to a bag of them. */
function looksLikeMessage(el: Element): boolean {
  if (el.type !== 'list') return false;
  const tid = el.items[0];
  return tid?.type === 'list' && tid.items.length === 2 && tid.items[0]!.type === 'index' && tid.items[1]!.type === 'integer';
}

/** `mailbag imp pack [FILE]`: RFC 753 notation in, bag (or shipping unit) octets out. */
export const packCommand: Command = {
  name: 'pack',
  summary: 'turn RFC 753 notation into message-bag octets',
  usage: [
    'mailbag imp pack [FILE] [--compress | --unit] [--raw] [--config FILE]',
    '',
    'Reads notation from FILE (or stdin): either one bag, LIST( message, ... ), or one or more',
    'messages, LIST( LIST( INDEX=tn, INTEGER=ihn ), ... ), which are packed into one bag in order.',
    'Share references are written exactly as given. Writes the octets to stdout.',
    '  --compress   write a basic-compressed shipping unit (compression type 1)',
    '  --unit       write an uncompressed shipping unit (compression type 0)',
    '  --raw        encode one element of any shape, without checking the message-bag structure',
    '  --config F   take limits (imp.maxDepth, imp.maxBagBytes) from this config file',
  ].join('\n'),
  async run(argv, io) {
    const { values, positionals } = parseCommandArgs(argv, {
      compress: { type: 'boolean' },
      unit: { type: 'boolean' },
      raw: { type: 'boolean' },
      config: { type: 'string', short: 'c' },
    });
    if (values.compress && values.unit) throw new UsageError('--compress and --unit are exclusive (--compress already makes a unit)');
    const limits = impLimits(values.config, io);
    const text = (await readInput(onePositional(positionals), io)).toString('utf8');

    const bytes = await withImpErrors(() => {
      const elements = parseNotationAll(text, { maxDepth: limits.maxDepth });
      let root: Element;
      if (values.raw) {
        if (elements.length !== 1) throw new UsageError(`--raw packs exactly one element; the input holds ${elements.length}`);
        root = elements[0]!;
      } else if (elements.length === 1 && !looksLikeMessage(elements[0]!)) {
        root = elements[0]!;
      } else {
        root = { type: 'list', items: elements };
      }
      if (!values.raw) bagMessages(root);
      const bag = encodeElement(root);
      if (!values.raw && bag.length > limits.maxBagBytes)
        throw new ImpError(ImpErrorCode.TOO_LARGE, `the bag is ${bag.length} octets, over imp.maxBagBytes (${limits.maxBagBytes})`);
      return values.compress || values.unit ? encodeShippingUnit(bag, { compress: values.compress ?? false }) : bag;
    });
    await writeOutput(io, bytes);
  },
};
