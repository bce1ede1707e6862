/**
 * The SQL of migration 26: the report's `rule` counters (`report_hourly` kind 'rule') follow
 * the rows of `pod_message_rules` instead of reading `filter.actions` from each stored event's
 * JSON again. Migration 16 counted them in the triggers of `pod_message_events`, parsing the
 * whole event (`json_valid`, `json_each`) once more per insert and per delete: about as much
 * as the rest of storing a message event. The store writes one `pod_message_rules` row per
 * rule in the transaction that stores the event (`PodStore.storeBatch`), and the rows go with
 * their event (`ON DELETE CASCADE`, whose deletes fire these triggers), so counting the rows
 * counts the same rules. Released text: never change what this produces; a change is a new
 * migration.
 */

/** The UTC hour (ms) of a time in µs, as migration 16 computes it. */
const hourOfUs = (us: string) => `(CAST(${us} AS INTEGER) / 3600000000 * 3600000)`;

function bump(kind: string, hour: string, name: string, detail: string, n: string): string {
  return `INSERT INTO report_hourly (kind, hour, name, detail, n) SELECT ${kind}, ${hour}, ${name}, ${detail}, ${n} WHERE true
      ON CONFLICT (kind, hour, name, detail) DO UPDATE SET n = n + excluded.n;`;
}

/** An event's own counts, as in migration 16: the event, and its disposition. */
function eventCounts(e: 'new' | 'old', sign: 1 | -1): string {
  return [
    bump(`'pod_message'`, hourOfUs(`${e}.ts_us`), `''`, `''`, `${sign}`),
    bump(`'disposition'`, hourOfUs(`${e}.ts_us`), `COALESCE(${e}.disposition, '')`, `''`, `${sign}`),
  ].join('\n      ');
}

export const POD_RULE_COUNTERS_SQL = `
  DROP TRIGGER report_pod_messages_insert;
  DROP TRIGGER report_pod_messages_delete;
  CREATE TRIGGER report_pod_messages_insert AFTER INSERT ON pod_message_events BEGIN
      ${eventCounts('new', 1)}
  END;
  CREATE TRIGGER report_pod_messages_delete AFTER DELETE ON pod_message_events BEGIN
      ${eventCounts('old', -1)}
  END;
  CREATE TRIGGER report_pod_rules_insert AFTER INSERT ON pod_message_rules BEGIN
      ${bump(`'rule'`, hourOfUs('new.ts_us'), 'new.module', 'new.rule', '1')}
  END;
  CREATE TRIGGER report_pod_rules_delete AFTER DELETE ON pod_message_rules BEGIN
      ${bump(`'rule'`, hourOfUs('old.ts_us'), 'old.module', 'old.rule', '-1')}
  END;
  CREATE TRIGGER report_pod_rules_update AFTER UPDATE ON pod_message_rules BEGIN
      SELECT RAISE(ABORT, 'PoD rule rows are written once with their event and never changed');
  END;
`;
