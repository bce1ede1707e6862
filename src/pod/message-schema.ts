/**
 * The `message` event schema (draft-04, like the document's maillog schema), written from the
 * tables of "PoD Log API, November 2020 Revision C" (Message Schema section).
 *
 * Where the tables and the events agents really send disagree, the events win, because an
 * event refused here is an event mailbag cannot correlate. Every departure is listed:
 * - `ts` is required although no table lists it: every event carries it and it is the
 *   event's instant (checkpoints, dedupe, archive windows).
 * - `msgParts` is not required: PPS 8.14 events with nothing but a text body come without it.
 * - `pps` is required, but is filled from `metadata.origin.data` before validation when an
 *   agent (PPS 8.21 and later) leaves it out (normalise.ts).
 * - Of the filter fields the table marks required, only `disposition`, `durationSecs`,
 *   `msgSizeBytes`, `qid`, `routes` and `suborgs` are: PPS 8.14 to 8.22 events omit
 *   `currentFolder`, `isMsgEncrypted`, `isMsgReinjected`, `mid`, `quarantine`, `startTime`
 *   and every `modules.*` object, and some 8.14 events come without `actions`. When an object is present its own required
 *   members are checked (`quarantine.folder`/`rule`, `suborgs.sender`/`rcpts`, ...), except
 *   `modules.urldefense.rewrittenUrls` and `msgParts[].urls[].notRewrittenReason`, which the
 *   same events omit.
 * - `filter.actions[].isFinal` is a boolean; the string `"True"`/`"False"` some agents send is
 *   turned into one before validation.
 * - Formats the tables name (hostname, ipv4/ipv6, email, date-time) are not enforced: events
 *   carry hashed, masked and empty values there (`host: "localhost"`, `country: "**"`).
 * - Members the tables do not list are allowed (newer agents add `delivered`, `rcptsHashed`,
 *   `metadata`; SIEM add-ons add `final_action` and the like).
 */

const str = { type: 'string' } as const;
const int = { type: 'integer' } as const;
const num = { type: 'number' } as const;
const bool = { type: 'boolean' } as const;
const strArray = { type: 'array', items: str } as const;
const obj = { type: 'object' } as const;

const connection = {
  type: 'object',
  required: ['sid', 'helo', 'host', 'ip', 'protocol'],
  properties: {
    sid: str,
    country: str,
    helo: str,
    host: str,
    ip: str,
    protocol: str,
    resolveStatus: str,
    tls: {
      type: 'object',
      properties: {
        inbound: {
          type: 'object',
          required: ['version'],
          properties: { cipher: str, cipherBits: int, policy: str, version: str },
        },
      },
    },
  },
} as const;

const envelope = {
  type: 'object',
  required: ['rcpts', 'from'],
  properties: { rcpts: strArray, from: str },
} as const;

const header = {
  type: 'object',
  properties: {
    cc: strArray,
    from: strArray,
    'message-id': strArray,
    'reply-to': strArray,
    'return-path': strArray,
    subject: strArray,
    to: strArray,
  },
} as const;

const msg = {
  type: 'object',
  properties: {
    header,
    lang: str,
    normalizedHeader: obj,
    parsedAddresses: { type: 'object', properties: { cc: strArray, from: strArray, to: strArray } },
    sizeBytes: int,
  },
} as const;

const url = {
  type: 'object',
  required: ['url', 'src'],
  properties: { url: str, isRewritten: bool, notRewrittenReason: str, src: strArray },
} as const;

const msgPart = {
  type: 'object',
  required: [
    'detectedCharset',
    'detectedExt',
    'detectedMime',
    'detectedName',
    'detectedSizeBytes',
    'disposition',
    'md5',
    'sha256',
    'isArchive',
    'isCorrupted',
    'isDeleted',
    'isProtected',
    'isTimedOut',
    'isVirtual',
    'labeledCharset',
    'labeledExt',
    'labeledMime',
    'labeledName',
  ],
  properties: {
    detectedCharset: str,
    detectedExt: str,
    detectedMime: str,
    detectedName: str,
    detectedSizeBytes: int,
    disposition: str,
    md5: str,
    sha256: str,
    isArchive: bool,
    isCorrupted: bool,
    isDeleted: bool,
    isProtected: bool,
    isTimedOut: bool,
    isVirtual: bool,
    labeledCharset: str,
    labeledExt: str,
    labeledMime: str,
    labeledName: str,
    metadata: obj,
    sandboxStatus: str,
    sizeDecodedBytes: int,
    structureId: str,
    urls: { type: 'array', items: url },
  },
} as const;

const dmarc = {
  type: 'object',
  properties: {
    filterdResult: str,
    authResults: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          emailIdentities: {
            type: 'object',
            properties: { 'header.from': str, 'smtp.helo': str, 'smtp.mailfrom': str },
          },
          method: str,
          propspec: { type: 'object', properties: { 'header.s': str } },
          reason: str,
          result: str,
        },
      },
    },
    records: { type: 'array' },
    srvid: str,
    alignment: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          fromDomain: str,
          results: {
            type: 'array',
            items: {
              type: 'object',
              properties: { identity: str, identityOrg: str, method: str, result: str },
            },
          },
        },
      },
    },
  },
} as const;

const urldefenseCounts = {
  type: 'object',
  required: ['total', 'unique', 'rewritten'],
  properties: Object.fromEntries(
    [
      'maxLimit',
      'total',
      'unique',
      'rewritten',
      'noRewriteIsEmail',
      'noRewriteIsLargeMsgPartSize',
      'noRewriteIsExcludedDomain',
      'noRewriteIsUnsupportedScheme',
      'noRewriteIsSchemeless',
      'noRewriteIsMaxLengthExceeded',
      'noRewriteIsContentTypeText',
    ].map((k) => [k, int]),
  ),
} as const;

const modules = {
  type: 'object',
  properties: {
    av: { type: 'object', required: ['virusNames'], properties: { virusNames: { type: 'array' } } },
    dkimv: {
      type: 'array',
      items: { type: 'object', required: ['domain', 'selector', 'result'], properties: { domain: str, selector: str, result: str } },
    },
    dmarc,
    pdr: {
      type: 'object',
      properties: {
        v1: { type: 'object', properties: { rscore: int, spamscore: int, virusscore: int } },
        v2: { type: 'object', properties: { response: str, rscore: int } },
      },
    },
    sandbox: { type: 'object', required: ['errorStatus'], properties: { errorStatus: str } },
    spam: { type: 'object', properties: { triggeredClassifier: str } },
    spf: { type: 'object', properties: { result: str } },
    urldefense: {
      type: 'object',
      required: ['version', 'counts'],
      properties: {
        rewrittenUrls: { type: 'array' },
        version: { type: 'object', required: ['engine'], properties: { engine: str } },
        counts: urldefenseCounts,
      },
    },
    zerohour: { type: 'object', required: ['score'], properties: { score: str } },
  },
} as const;

const rcptsObject = { type: 'object', properties: { rcpts: { type: 'array' } } } as const;

const filter = {
  type: 'object',
  required: ['disposition', 'durationSecs', 'msgSizeBytes', 'qid', 'routes', 'suborgs'],
  properties: {
    actions: {
      type: 'array',
      items: {
        type: 'object',
        required: ['action', 'module', 'rule'],
        properties: { action: str, module: str, rule: str, isFinal: bool },
      },
    },
    disposition: str,
    pe: rcptsObject,
    quarantine: { type: 'object', required: ['folder', 'rule'], properties: { folder: str, rule: str } },
    durationSecs: num,
    currentFolder: str,
    isMsgEncrypted: bool,
    isMsgReinjected: bool,
    mid: int,
    modules,
    msgSizeBytes: int,
    origGuid: str,
    qid: str,
    routes: strArray,
    routeDirection: str,
    smime: { type: 'object', properties: { rcpts: { type: 'array' }, signedRcpts: { type: 'array' } } },
    startTime: str,
    suborgs: { type: 'object', required: ['sender', 'rcpts'], properties: { sender: str, rcpts: { type: 'array' } } },
    throttleIp: str,
    verified: rcptsObject,
  },
} as const;

const pps = {
  type: 'object',
  required: ['agent', 'cid', 'version'],
  properties: { agent: str, cid: str, version: str },
} as const;

export const messageSchema = {
  $schema: 'http://json-schema.org/draft-04/schema#',
  id: 'https://mailbag.invalid/schemas/pod-message.json',
  type: 'object',
  required: ['guid', 'ts', 'connection', 'envelope', 'msg', 'filter', 'pps'],
  properties: {
    guid: str,
    ts: str,
    connection,
    envelope,
    msg,
    msgParts: { type: 'array', items: msgPart },
    filter,
    pps,
  },
} as const;
