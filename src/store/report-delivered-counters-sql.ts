/**
 * The SQL of migration 29: the report's `delivered` figure is read from the latency counters
 * (`report_latency_hourly`, summed over next hops and bins), which count every delivered
 * recipient by the hour it finished, exactly as the `delivered` counter of `report_hourly`
 * did. Migration 16 kept both, so each delivery cost two upserts in the recipients' triggers
 * on the queue thread's hot path; now it costs one. `failed` stays in `report_hourly`.
 * Released text: never change what this produces; a change is a new migration.
 */

/** The UTC hour (ms) of a time in ms, as migration 16 computes it. */
const hourOfMs = (ms: string) => `(CAST(${ms} AS INTEGER) / 3600000 * 3600000)`;

/** Migration 16's latency bins (its COUNTER_LATENCY_BINS_MS) and fine buckets, as it computes them. */
const LATENCY_BINS_MS = [1_000, 5_000, 30_000, 60_000, 300_000, 1_800_000, 3_600_000, 21_600_000, 86_400_000] as const;
const latencyBin = (ms: string) => `(CASE ${LATENCY_BINS_MS.map((edge, i) => `WHEN ${ms} < ${edge} THEN ${i}`).join(' ')} ELSE ${LATENCY_BINS_MS.length} END)`;
const latencyBucket = (ms: string) => `(CASE WHEN ${ms} < 1 THEN 0 ELSE 1 + CAST(floor(16 * log2(${ms})) AS INTEGER) END)`;

/** A finished recipient's counts: failed by the hour it finished; a delivery by its hour, next hop and latency. */
function recipientCounts(r: 'new' | 'old', sign: 1 | -1): string {
  return `INSERT INTO report_hourly (kind, hour, name, detail, n) SELECT 'failed', ${hourOfMs(`${r}.updated_at`)}, '', '', ${sign} WHERE ${r}.state = 'failed'
      ON CONFLICT (kind, hour, name, detail) DO UPDATE SET n = n + excluded.n;
      INSERT INTO report_latency_hourly (hour, nexthop, bin, bucket, n)
        SELECT ${hourOfMs(`${r}.updated_at`)}, COALESCE(${r}.nexthop, ''), ${latencyBin('d.ms')}, ${latencyBucket('d.ms')}, ${sign}
        FROM (SELECT max(0, ${r}.updated_at - m.received_at) AS ms FROM messages AS m WHERE m.qid = ${r}.qid) AS d
        WHERE ${r}.state = 'delivered'
      ON CONFLICT (hour, nexthop, bin, bucket) DO UPDATE SET n = n + excluded.n;`;
}

export const REPORT_DELIVERED_COUNTERS_SQL = `
  DROP TRIGGER report_recipients_insert;
  DROP TRIGGER report_recipients_delete;
  DROP TRIGGER report_recipients_update;
  CREATE TRIGGER report_recipients_insert AFTER INSERT ON recipients WHEN new.state IN ('delivered', 'failed') BEGIN
      ${recipientCounts('new', 1)}
  END;
  CREATE TRIGGER report_recipients_delete AFTER DELETE ON recipients WHEN old.state IN ('delivered', 'failed') BEGIN
      ${recipientCounts('old', -1)}
  END;
  CREATE TRIGGER report_recipients_update AFTER UPDATE OF qid, state, updated_at, nexthop ON recipients
    WHEN old.state IN ('delivered', 'failed') OR new.state IN ('delivered', 'failed') BEGIN
      ${recipientCounts('old', -1)}
      ${recipientCounts('new', 1)}
  END;
  DELETE FROM report_hourly WHERE kind = 'delivered';
`;
