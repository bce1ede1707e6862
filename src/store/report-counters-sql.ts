/**
 * The SQL of migration 16 (report counters), built once from small helpers so each trigger
 * reads as what it counts. Released text: never change what this produces; a change is a new
 * migration.
 *
 * `report_hourly` holds, per UTC hour (ms since the epoch, the hour's start), counts of what
 * `mailbag report` shows; `report_latency_hourly` the delivered recipients per hour and next
 * hop by latency bin (the report's fixed histogram bins) and by fine log-scale bucket (16 per
 * doubling of the ms); `report_upstream` one row per upstream qid that a PoD maillog line hands
 * to mailbag, with the first and last hour of those lines and whether it is linked. Triggers
 * keep all three in the transaction that changes the underlying rows, deletes included, so
 * retention prunes the counts with the rows. docs/report.md, "Counters".
 */

/** The UTC hour (ms) of a time in ms, and of a time in µs. */
export const hourOfMs = (ms: string) => `(CAST(${ms} AS INTEGER) / 3600000 * 3600000)`;
const hourOfUs = (us: string) => `(CAST(${us} AS INTEGER) / 3600000000 * 3600000)`;

/** The report's latency histogram bins (its LATENCY_BINS_MS): bin i holds ms < edge i, the last bin the rest. */
export const COUNTER_LATENCY_BINS_MS = [1_000, 5_000, 30_000, 60_000, 300_000, 1_800_000, 3_600_000, 21_600_000, 86_400_000] as const;
export const latencyBin = (ms: string) =>
  `(CASE ${COUNTER_LATENCY_BINS_MS.map((edge, i) => `WHEN ${ms} < ${edge} THEN ${i}`).join(' ')} ELSE ${COUNTER_LATENCY_BINS_MS.length} END)`;
/** Fine bucket: 0 for 0 ms, else 1 + floor(16 * log2(ms)) (src/store/latency-buckets.ts). */
export const latencyBucket = (ms: string) => `(CASE WHEN ${ms} < 1 THEN 0 ELSE 1 + CAST(floor(16 * log2(${ms})) AS INTEGER) END)`;

/** A maillog line that hands the upstream message to mailbag: `queued as` a qid of mailbag's form. */
export const MAILBAG_QID_GLOB = '[0-9A-Z]'.repeat(13);
const handsToMailbag = (e: string) => `${e}.queued_as IS NOT NULL AND ${e}.queued_as GLOB '${MAILBAG_QID_GLOB}'`;

/** Adds `n` to a counter; `from` is the rest of a SELECT and must end in a WHERE clause. */
export function bump(kind: string, hour: string, name: string, detail: string, n: string, from: string): string {
  return `INSERT INTO report_hourly (kind, hour, name, detail, n) SELECT ${kind}, ${hour}, ${name}, ${detail}, ${n} ${from}
      ON CONFLICT (kind, hour, name, detail) DO UPDATE SET n = n + excluded.n;`;
}

const linkOf = (qid: string) => `EXISTS (SELECT 1 FROM upstream_links AS l WHERE l.qid = ${qid})`;
const originOf = (qid: string) => `EXISTS (SELECT 1 FROM message_origins AS o WHERE o.qid = ${qid})`;

/** A message row's counts: received; made by mailbag (origin); linked and not made; linked per via. */
function messageCounts(m: 'new' | 'old', sign: 1 | -1): string {
  const h = hourOfMs(`${m}.received_at`);
  return [
    bump(`'received'`, h, `''`, `''`, `${sign}`, 'WHERE true'),
    bump(`'origin'`, h, `''`, `''`, `${sign}`, `WHERE ${originOf(`${m}.qid`)}`),
    bump(`'linked'`, h, `''`, `''`, `${sign}`, `WHERE ${linkOf(`${m}.qid`)} AND NOT ${originOf(`${m}.qid`)}`),
    bump(`'via'`, h, 'v.via', `''`, `${sign}`, `FROM (SELECT DISTINCT via FROM upstream_links WHERE qid = ${m}.qid) AS v WHERE true`),
  ].join('\n      ');
}

/** A delivered recipient's latency count, by the hour it finished and its next hop. */
export function latencyCounts(r: 'new' | 'old', sign: 1 | -1): string {
  return `INSERT INTO report_latency_hourly (hour, nexthop, bin, bucket, n)
        SELECT ${hourOfMs(`${r}.updated_at`)}, COALESCE(${r}.nexthop, ''), ${latencyBin('d.ms')}, ${latencyBucket('d.ms')}, ${sign}
        FROM (SELECT max(0, ${r}.updated_at - m.received_at) AS ms FROM messages AS m WHERE m.qid = ${r}.qid) AS d
        WHERE ${r}.state = 'delivered'
      ON CONFLICT (hour, nexthop, bin, bucket) DO UPDATE SET n = n + excluded.n;`;
}

/** A finished recipient's counts: delivered or failed by the hour it finished; a delivery's latency. */
function recipientCounts(r: 'new' | 'old', sign: 1 | -1): string {
  const finished = `${r}.state IN ('delivered', 'failed')`;
  return [bump(`${r}.state`, hourOfMs(`${r}.updated_at`), `''`, `''`, `${sign}`, `WHERE ${finished}`), latencyCounts(r, sign)].join('\n      ');
}

/** The recipients' three counter triggers, each running `counts` for the row's old and new versions. */
export function recipientTriggers(counts: (r: 'new' | 'old', sign: 1 | -1) => string): string {
  return `CREATE TRIGGER report_recipients_insert AFTER INSERT ON recipients WHEN new.state IN ('delivered', 'failed') BEGIN
      ${counts('new', 1)}
  END;
  CREATE TRIGGER report_recipients_delete AFTER DELETE ON recipients WHEN old.state IN ('delivered', 'failed') BEGIN
      ${counts('old', -1)}
  END;
  CREATE TRIGGER report_recipients_update AFTER UPDATE OF qid, state, updated_at, nexthop ON recipients
    WHEN old.state IN ('delivered', 'failed') OR new.state IN ('delivered', 'failed') BEGIN
      ${counts('old', -1)}
      ${counts('new', 1)}
  END;`;
}

/** Recipient deferrals of an attempt: each recipient it left to retry (the metric's meaning). */
function attemptCounts(a: 'new' | 'old', sign: 1 | -1): string {
  return bump(
    `'deferred'`,
    hourOfMs(`${a}.started_at`),
    `''`,
    `''`,
    `${sign} * d.n`,
    `FROM (SELECT COUNT(*) AS n FROM json_each(CASE WHEN json_valid(${a}.recipients) THEN ${a}.recipients ELSE '[]' END) AS r
          WHERE r.type = 'object' AND json_extract(r.value, '$.state') = 'deferred') AS d
        WHERE ${a}.outcome IN ('deferred', 'partial') AND d.n > 0`,
  );
}

const languageCounts = (c: 'new' | 'old', sign: 1 | -1) =>
  bump(`'language'`, hourOfMs(`${c}.decided_at`), `${c}.mode`, `COALESCE(${c}.tags, '')`, `${sign}`, 'WHERE true');

/**
 * The rules a PoD message event triggered (`filter.actions[]`), read from the event as
 * migration 15's trigger reads them into pod_message_rules: counted from the event itself so
 * the counts do not hang on that table's trigger.
 */
function ruleCounts(e: 'new' | 'old', sign: 1 | -1): string {
  return bump(
    `'rule'`,
    hourOfUs(`${e}.ts_us`),
    'r.module',
    'r.rule',
    `${sign}`,
    `FROM (SELECT CASE WHEN a.type = 'object' THEN COALESCE(json_extract(a.value, '$.module'), '') END AS module,
            CASE WHEN a.type = 'object' THEN json_extract(a.value, '$.rule') END AS rule
          FROM json_each(CASE WHEN json_valid(${e}.event) THEN ${e}.event ELSE '{}' END, '$.filter.actions') AS a) AS r
        WHERE typeof(r.rule) = 'text'`,
  );
}

/** An upstream qid whose hand-over lines all fall in one hour is counted in that hour. */
function upstreamCounts(u: 'new' | 'old', sign: 1 | -1): string {
  const single = `${u}.first_hour = ${u}.last_hour`;
  return [
    bump(`'upstream'`, `${u}.first_hour`, `''`, `''`, `${sign}`, `WHERE ${single}`),
    bump(`'upstream_linked'`, `${u}.first_hour`, `''`, `''`, `${sign}`, `WHERE ${single} AND ${u}.linked`),
  ].join('\n      ');
}

export const REPORT_COUNTERS_SQL = `
  CREATE TABLE report_hourly (
    kind TEXT NOT NULL,
    hour INTEGER NOT NULL,
    name TEXT NOT NULL,
    detail TEXT NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (kind, hour, name, detail)
  ) WITHOUT ROWID;
  CREATE TABLE report_latency_hourly (
    hour INTEGER NOT NULL,
    nexthop TEXT NOT NULL,
    bin INTEGER NOT NULL,
    bucket INTEGER NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (hour, nexthop, bin, bucket)
  ) WITHOUT ROWID;
  CREATE TABLE report_upstream (
    upstream_qid TEXT PRIMARY KEY,
    first_hour INTEGER NOT NULL,
    last_hour INTEGER NOT NULL,
    lines INTEGER NOT NULL,
    linked INTEGER NOT NULL
  ) WITHOUT ROWID;
  CREATE INDEX report_upstream_spanning ON report_upstream (last_hour) WHERE first_hour < last_hour;

  CREATE TRIGGER report_upstream_insert AFTER INSERT ON report_upstream BEGIN
      ${upstreamCounts('new', 1)}
  END;
  CREATE TRIGGER report_upstream_delete AFTER DELETE ON report_upstream BEGIN
      ${upstreamCounts('old', -1)}
  END;
  CREATE TRIGGER report_upstream_update AFTER UPDATE OF first_hour, last_hour, linked ON report_upstream
    WHEN old.first_hour <> new.first_hour OR old.last_hour <> new.last_hour OR old.linked <> new.linked BEGIN
      ${upstreamCounts('old', -1)}
      ${upstreamCounts('new', 1)}
  END;

  INSERT INTO report_upstream (upstream_qid, first_hour, last_hour, lines, linked)
    SELECT e.qid, ${hourOfUs('MIN(e.ts_us)')}, ${hourOfUs('MAX(e.ts_us)')}, COUNT(*),
      EXISTS (SELECT 1 FROM upstream_links AS l WHERE l.upstream_qid = e.qid)
    FROM pod_maillog_events AS e WHERE ${handsToMailbag('e')} GROUP BY e.qid;
  INSERT INTO report_hourly (kind, hour, name, detail, n)
    SELECT 'received', ${hourOfMs('received_at')}, '', '', COUNT(*) FROM messages GROUP BY 2;
  INSERT INTO report_hourly (kind, hour, name, detail, n)
    SELECT 'origin', ${hourOfMs('m.received_at')}, '', '', COUNT(*) FROM messages AS m JOIN message_origins AS o ON o.qid = m.qid GROUP BY 2;
  INSERT INTO report_hourly (kind, hour, name, detail, n)
    SELECT 'linked', ${hourOfMs('m.received_at')}, '', '', COUNT(*) FROM messages AS m
    WHERE ${linkOf('m.qid')} AND NOT ${originOf('m.qid')} GROUP BY 2;
  INSERT INTO report_hourly (kind, hour, name, detail, n)
    SELECT 'via', ${hourOfMs('m.received_at')}, l.via, '', COUNT(DISTINCT m.qid) FROM messages AS m JOIN upstream_links AS l ON l.qid = m.qid GROUP BY 2, 3;
  INSERT INTO report_hourly (kind, hour, name, detail, n)
    SELECT state, ${hourOfMs('updated_at')}, '', '', COUNT(*) FROM recipients WHERE state IN ('delivered', 'failed') GROUP BY 1, 2;
  INSERT INTO report_latency_hourly (hour, nexthop, bin, bucket, n)
    SELECT ${hourOfMs('d.updated_at')}, d.nexthop, ${latencyBin('d.ms')}, ${latencyBucket('d.ms')}, COUNT(*) FROM (
      SELECT r.updated_at, COALESCE(r.nexthop, '') AS nexthop, max(0, r.updated_at - m.received_at) AS ms
      FROM recipients AS r JOIN messages AS m ON m.qid = r.qid WHERE r.state = 'delivered') AS d
    GROUP BY 1, 2, 3, 4;
  INSERT INTO report_hourly (kind, hour, name, detail, n)
    SELECT 'deferred', ${hourOfMs('a.started_at')}, '', '', COUNT(*)
    FROM attempts AS a, json_each(CASE WHEN json_valid(a.recipients) THEN a.recipients ELSE '[]' END) AS r
    WHERE a.outcome IN ('deferred', 'partial') AND r.type = 'object' AND json_extract(r.value, '$.state') = 'deferred' GROUP BY 2;
  INSERT INTO report_hourly (kind, hour, name, detail, n)
    SELECT 'language', ${hourOfMs('decided_at')}, mode, COALESCE(tags, ''), COUNT(*) FROM language_choices GROUP BY 2, 3, 4;
  INSERT INTO report_hourly (kind, hour, name, detail, n)
    SELECT 'pod_message', ${hourOfUs('ts_us')}, '', '', COUNT(*) FROM pod_message_events GROUP BY 2;
  INSERT INTO report_hourly (kind, hour, name, detail, n)
    SELECT 'disposition', ${hourOfUs('ts_us')}, COALESCE(disposition, ''), '', COUNT(*) FROM pod_message_events GROUP BY 2, 3;
  INSERT INTO report_hourly (kind, hour, name, detail, n)
    SELECT 'pod_maillog', ${hourOfUs('ts_us')}, '', '', COUNT(*) FROM pod_maillog_events GROUP BY 2;
  INSERT INTO report_hourly (kind, hour, name, detail, n)
    SELECT 'rule', ${hourOfUs('ts_us')}, module, rule, COUNT(*) FROM pod_message_rules GROUP BY 2, 3, 4;

  -- Retention deletes a message before its recipients (and the foreign key's cascade would
  -- too): the recipients go first, so their triggers still find the message's receipt time.
  CREATE TRIGGER report_messages_delete_recipients BEFORE DELETE ON messages BEGIN
      DELETE FROM recipients WHERE qid = old.qid;
  END;
  CREATE TRIGGER report_messages_insert AFTER INSERT ON messages BEGIN
      ${messageCounts('new', 1)}
  END;
  CREATE TRIGGER report_messages_delete AFTER DELETE ON messages BEGIN
      ${messageCounts('old', -1)}
  END;
  CREATE TRIGGER report_messages_update AFTER UPDATE OF qid, received_at ON messages
    WHEN old.qid IS NOT new.qid OR old.received_at IS NOT new.received_at BEGIN
      ${messageCounts('old', -1)}
      ${messageCounts('new', 1)}
  END;

  CREATE TRIGGER report_origins_insert AFTER INSERT ON message_origins BEGIN
      ${bump(`'origin'`, hourOfMs('m.received_at'), `''`, `''`, '1', 'FROM messages AS m WHERE m.qid = new.qid')}
      ${bump(`'linked'`, hourOfMs('m.received_at'), `''`, `''`, '-1', `FROM messages AS m WHERE m.qid = new.qid AND ${linkOf('new.qid')}`)}
  END;
  CREATE TRIGGER report_origins_delete AFTER DELETE ON message_origins BEGIN
      ${bump(`'origin'`, hourOfMs('m.received_at'), `''`, `''`, '-1', 'FROM messages AS m WHERE m.qid = old.qid')}
      ${bump(`'linked'`, hourOfMs('m.received_at'), `''`, `''`, '1', `FROM messages AS m WHERE m.qid = old.qid AND ${linkOf('old.qid')}`)}
  END;

  CREATE TRIGGER report_links_insert AFTER INSERT ON upstream_links BEGIN
      ${bump(`'linked'`, hourOfMs('m.received_at'), `''`, `''`, '1', `FROM messages AS m WHERE m.qid = new.qid
        AND NOT EXISTS (SELECT 1 FROM upstream_links AS l WHERE l.qid = new.qid AND l.rowid <> new.rowid) AND NOT ${originOf('new.qid')}`)}
      ${bump(`'via'`, hourOfMs('m.received_at'), 'new.via', `''`, '1', `FROM messages AS m WHERE m.qid = new.qid
        AND NOT EXISTS (SELECT 1 FROM upstream_links AS l WHERE l.qid = new.qid AND l.via = new.via AND l.rowid <> new.rowid)`)}
      UPDATE report_upstream SET linked = 1 WHERE upstream_qid = new.upstream_qid AND linked = 0;
  END;
  CREATE TRIGGER report_links_delete AFTER DELETE ON upstream_links BEGIN
      ${bump(`'linked'`, hourOfMs('m.received_at'), `''`, `''`, '-1', `FROM messages AS m WHERE m.qid = old.qid
        AND NOT ${linkOf('old.qid')} AND NOT ${originOf('old.qid')}`)}
      ${bump(`'via'`, hourOfMs('m.received_at'), 'old.via', `''`, '-1', `FROM messages AS m WHERE m.qid = old.qid
        AND NOT EXISTS (SELECT 1 FROM upstream_links AS l WHERE l.qid = old.qid AND l.via = old.via)`)}
      UPDATE report_upstream SET linked = 0 WHERE upstream_qid = old.upstream_qid AND linked = 1
        AND NOT EXISTS (SELECT 1 FROM upstream_links AS l WHERE l.upstream_qid = old.upstream_qid);
  END;
  CREATE TRIGGER report_links_update AFTER UPDATE ON upstream_links BEGIN
      SELECT RAISE(ABORT, 'upstream_links rows are inserted and deleted, never updated');
  END;

  ${recipientTriggers(recipientCounts)}

  CREATE TRIGGER report_attempts_insert AFTER INSERT ON attempts WHEN new.outcome IN ('deferred', 'partial') BEGIN
      ${attemptCounts('new', 1)}
  END;
  CREATE TRIGGER report_attempts_delete AFTER DELETE ON attempts WHEN old.outcome IN ('deferred', 'partial') BEGIN
      ${attemptCounts('old', -1)}
  END;
  CREATE TRIGGER report_attempts_update AFTER UPDATE OF started_at, outcome, recipients ON attempts BEGIN
      ${attemptCounts('old', -1)}
      ${attemptCounts('new', 1)}
  END;

  CREATE TRIGGER report_languages_insert AFTER INSERT ON language_choices BEGIN
      ${languageCounts('new', 1)}
  END;
  CREATE TRIGGER report_languages_delete AFTER DELETE ON language_choices BEGIN
      ${languageCounts('old', -1)}
  END;
  CREATE TRIGGER report_languages_update AFTER UPDATE OF mode, tags, decided_at ON language_choices BEGIN
      ${languageCounts('old', -1)}
      ${languageCounts('new', 1)}
  END;

  CREATE TRIGGER report_pod_messages_insert AFTER INSERT ON pod_message_events BEGIN
      ${bump(`'pod_message'`, hourOfUs('new.ts_us'), `''`, `''`, '1', 'WHERE true')}
      ${bump(`'disposition'`, hourOfUs('new.ts_us'), `COALESCE(new.disposition, '')`, `''`, '1', 'WHERE true')}
      ${ruleCounts('new', 1)}
  END;
  CREATE TRIGGER report_pod_messages_delete AFTER DELETE ON pod_message_events BEGIN
      ${bump(`'pod_message'`, hourOfUs('old.ts_us'), `''`, `''`, '-1', 'WHERE true')}
      ${bump(`'disposition'`, hourOfUs('old.ts_us'), `COALESCE(old.disposition, '')`, `''`, '-1', 'WHERE true')}
      ${ruleCounts('old', -1)}
  END;
  CREATE TRIGGER report_pod_messages_update AFTER UPDATE OF ts_us, disposition ON pod_message_events BEGIN
      SELECT RAISE(ABORT, 'PoD events are stored once and never changed');
  END;
  CREATE TRIGGER report_pod_maillog_insert AFTER INSERT ON pod_maillog_events BEGIN
      ${bump(`'pod_maillog'`, hourOfUs('new.ts_us'), `''`, `''`, '1', 'WHERE true')}
      INSERT INTO report_upstream (upstream_qid, first_hour, last_hour, lines, linked)
        SELECT new.qid, ${hourOfUs('new.ts_us')}, ${hourOfUs('new.ts_us')}, 1,
          EXISTS (SELECT 1 FROM upstream_links AS l WHERE l.upstream_qid = new.qid)
        WHERE ${handsToMailbag('new')}
      ON CONFLICT (upstream_qid) DO UPDATE SET first_hour = min(first_hour, excluded.first_hour),
        last_hour = max(last_hour, excluded.last_hour), lines = lines + 1;
  END;
  CREATE TRIGGER report_pod_maillog_delete AFTER DELETE ON pod_maillog_events BEGIN
      ${bump(`'pod_maillog'`, hourOfUs('old.ts_us'), `''`, `''`, '-1', 'WHERE true')}
      DELETE FROM report_upstream WHERE upstream_qid = old.qid AND lines <= 1 AND ${handsToMailbag('old')};
      UPDATE report_upstream SET lines = lines - 1,
          first_hour = (SELECT ${hourOfUs('MIN(e.ts_us)')} FROM pod_maillog_events AS e WHERE e.qid = old.qid AND ${handsToMailbag('e')}),
          last_hour = (SELECT ${hourOfUs('MAX(e.ts_us)')} FROM pod_maillog_events AS e WHERE e.qid = old.qid AND ${handsToMailbag('e')})
        WHERE upstream_qid = old.qid AND ${handsToMailbag('old')};
  END;
  CREATE TRIGGER report_pod_maillog_update AFTER UPDATE OF qid, ts_us, queued_as ON pod_maillog_events BEGIN
      SELECT RAISE(ABORT, 'PoD events are stored once and never changed');
  END;
`;
