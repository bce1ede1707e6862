/**
 * The maillog JSON schema exactly as "PoD Log API, November 2020 Revision C" prints it
 * (draft-04, with its per-property `id`s). Do not edit it to fit events: quirks of newer
 * events (numbers as strings, `tls{}` at the top level, `pps{}` missing) are normalised
 * before validation (normalise.ts), so the document's schema stays the contract.
 */
export const maillogSchema = {
  $schema: 'http://json-schema.org/draft-04/schema#',
  id: 'https://www.proofpoint.com/v2/schemas/maillog.json',
  properties: {
    data: { id: '/properties/data', type: 'string' },
    id: { id: '/properties/id', type: 'string' },
    pps: {
      id: '/properties/pps',
      properties: {
        agent: { id: '/properties/pps/properties/agent', type: 'string' },
        cid: { id: '/properties/pps/properties/cid', type: 'string' },
      },
      required: ['agent', 'cid'],
      type: 'object',
    },
    sm: {
      id: '/properties/sm',
      properties: {
        ctladdr: { id: '/properties/sm/properties/ctladdr', type: 'string' },
        delay: { id: '/properties/sm/properties/delay', type: 'string' },
        dsn: { id: '/properties/sm/properties/dsn', type: 'string' },
        mailer: { id: '/properties/sm/properties/mailer', type: 'string' },
        pri: { id: '/properties/sm/properties/pri', type: 'integer' },
        qid: { id: '/properties/sm/properties/qid', type: 'string' },
        stat: { id: '/properties/sm/properties/stat', type: 'string' },
        tls: {
          id: '/properties/sm/properties/tls',
          properties: {
            verify: { id: '/properties/sm/properties/tls/properties/verify', type: 'string' },
          },
          required: ['verify'],
          type: 'object',
        },
        to: {
          id: '/properties/sm/properties/to',
          items: { id: '/properties/sm/properties/to/items', type: 'string' },
          type: 'array',
        },
        xdelay: { id: '/properties/sm/properties/xdelay', type: 'string' },
      },
      required: ['qid'],
      type: 'object',
    },
    ts: { id: '/properties/ts', type: 'string' },
  },
  required: ['pps', 'data', 'ts', 'sm', 'id'],
  type: 'object',
} as const;
