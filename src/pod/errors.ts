/** Why a PoD event could not be taken; `code` is what a dead letter records beside the message. */
export type PodErrorCode =
  | 'ERR_POD_TIME'
  | 'ERR_POD_JSON'
  | 'ERR_POD_TOO_LARGE'
  | 'ERR_POD_KIND'
  | 'ERR_POD_SCHEMA'
  | 'ERR_POD_NORMALISE'
  | 'ERR_POD_SENDMAIL_LINE';

export class PodError extends Error {
  constructor(
    readonly code: PodErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'PodError';
  }
}
