/**
 * The SQL of migration 29: the report's `delivered` figure is read from the latency counters
 * (`report_latency_hourly`, summed over next hops and bins), which count every delivered
 * recipient by the hour it finished, exactly as the `delivered` counter of `report_hourly`
 * did. Migration 16 kept both, so each delivery cost two upserts in the recipients' triggers
 * on the queue thread's hot path; now it costs one. `failed` stays in `report_hourly`. The
 * triggers are migration 16's, built by its helpers, without the `delivered` count.
 * Released text: never change what this produces; a change is a new migration.
 */
import { bump, hourOfMs, latencyCounts, recipientTriggers } from './report-counters-sql.js';

/** A finished recipient's counts: failed by the hour it finished; a delivery by its hour, next hop and latency. */
function recipientCounts(r: 'new' | 'old', sign: 1 | -1): string {
  return [bump(`'failed'`, hourOfMs(`${r}.updated_at`), `''`, `''`, `${sign}`, `WHERE ${r}.state = 'failed'`), latencyCounts(r, sign)].join('\n      ');
}

export const REPORT_DELIVERED_COUNTERS_SQL = `
  DROP TRIGGER report_recipients_insert;
  DROP TRIGGER report_recipients_delete;
  DROP TRIGGER report_recipients_update;
  ${recipientTriggers(recipientCounts)}
  DELETE FROM report_hourly WHERE kind = 'delivered';
`;
