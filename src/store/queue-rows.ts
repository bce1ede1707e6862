import type { Statement } from 'better-sqlite3';
import type { MessageRow, RecipientRow } from './queue-store.js';

/**
 * The queue's hot statements read message and recipient rows as arrays (better-sqlite3's raw
 * mode) and build the objects here: better-sqlite3 builds a row object one named property at
 * a time, which cost more than the SQL of the inserts that returned them (about a fifth of the
 * queue connection's CPU per message). These lists are the columns in table order; a test
 * holds them to the tables, so a migration that adds a column fails it until it is added here.
 */
export const MESSAGE_COLUMNS = [
  'qid', 'received_at', 'envelope_from', 'size', 'spool_path', 'client_address', 'client_hostname', 'helo', 'auth_user',
  'state', 'finished_at', 'spool_offset', 'sha256', 'held_at', 'hold_reason', 'body_type', 'smtputf8', 'declared_size',
  'dsn_ret', 'dsn_envid',
] as const satisfies readonly (keyof MessageRow)[];

export const RECIPIENT_COLUMNS = [
  'qid', 'rcpt', 'state', 'next_attempt_at', 'attempts', 'last_reply', 'nexthop', 'inflight_until', 'delivered_as',
  'updated_at', 'retry_gen', 'rewritten', 'copy_path', 'copy_size', 'copy_offset', 'copy_sha256', 'dsn_notify', 'dsn_orcpt',
] as const satisfies readonly (keyof RecipientRow)[];

/** `qid, received_at, ...`: the select list that `messageRowOf` reads, and `recipientRowOf`'s. */
export const MESSAGE_SELECT = MESSAGE_COLUMNS.join(', ');
export const RECIPIENT_SELECT = RECIPIENT_COLUMNS.join(', ');

type Raw = readonly unknown[];

/** A raw row of `MESSAGE_SELECT` as a MessageRow (the literal keeps V8 to one object shape). */
export function messageRowOf(v: Raw): MessageRow {
  return {
    qid: v[0],
    received_at: v[1],
    envelope_from: v[2],
    size: v[3],
    spool_path: v[4],
    client_address: v[5],
    client_hostname: v[6],
    helo: v[7],
    auth_user: v[8],
    state: v[9],
    finished_at: v[10],
    spool_offset: v[11],
    sha256: v[12],
    held_at: v[13],
    hold_reason: v[14],
    body_type: v[15],
    smtputf8: v[16],
    declared_size: v[17],
    dsn_ret: v[18],
    dsn_envid: v[19],
  } as MessageRow;
}

/** A raw row of `RECIPIENT_SELECT` as a RecipientRow. */
export function recipientRowOf(v: Raw): RecipientRow {
  return {
    qid: v[0],
    rcpt: v[1],
    state: v[2],
    next_attempt_at: v[3],
    attempts: v[4],
    last_reply: v[5],
    nexthop: v[6],
    inflight_until: v[7],
    delivered_as: v[8],
    updated_at: v[9],
    retry_gen: v[10],
    rewritten: v[11],
    copy_path: v[12],
    copy_size: v[13],
    copy_offset: v[14],
    copy_sha256: v[15],
    dsn_notify: v[16],
    dsn_orcpt: v[17],
  } as RecipientRow;
}

/** A statement in raw mode whose rows `of` turns into objects. */
export class RowStatement<Row> {
  constructor(
    private readonly statement: Statement,
    private readonly of: (v: Raw) => Row,
  ) {
    statement.raw(true);
  }

  get(...params: unknown[]): Row | undefined {
    const v = this.statement.get(...params) as Raw | undefined;
    return v === undefined ? undefined : this.of(v);
  }

  all(...params: unknown[]): Row[] {
    const rows = this.statement.all(...params) as Raw[];
    const out = new Array<Row>(rows.length);
    for (let i = 0; i < rows.length; i++) out[i] = this.of(rows[i]!);
    return out;
  }
}
