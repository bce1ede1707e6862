/** Why a PoD event could not be taken; `code` is what a dead letter records beside the message. */
export type PodErrorCode =
  | 'ERR_POD_TIME'
  | 'ERR_POD_JSON'
  | 'ERR_POD_TOO_LARGE'
  | 'ERR_POD_KIND'
  | 'ERR_POD_SCHEMA'
  | 'ERR_POD_NORMALISE'
  | 'ERR_POD_SENDMAIL_LINE'
  /** A fault in mailbag itself while processing the event; the event is kept as a dead letter. */
  | 'ERR_POD_INTERNAL';

export class PodError extends Error {
  constructor(
    readonly code: PodErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'PodError';
  }
}
