-- Claim the report of %(period_key)s for each given station before anything is
-- built or sent, and return the claimed stations' report settings and the
-- reference time of each station's previous sent report. A new claim
-- gets a fresh Message-ID. A claim taken again after a failure or a crash
-- keeps its Message-ID, so a resent report is the same message. A claim that
-- is still 'sending' is taken again only when it is older than the lease or
-- was made by an earlier attempt of the same run (a retried task).
WITH claimed AS (
    INSERT INTO net119.station_reports AS r (
        station_id, cadence, period_key, period_start, period_end, status,
        run_id, run_date, as_of, attempts, claimed_at, message_id
    )
    SELECT s.id, %(cadence)s, %(period_key)s, %(period_start)s, %(period_end)s,
           'sending', %(run_id)s, %(run_date)s, %(as_of)s, 1, now(),
           '<report.' || replace(gen_random_uuid()::text, '-', '') || '@'
               || %(domain)s || '>'
    FROM net119.stations AS s
    WHERE s.id = ANY(%(station_ids)s)
    ON CONFLICT (station_id, period_key) DO UPDATE SET
        status = 'sending',
        attempts = r.attempts + 1,
        claimed_at = now(),
        run_id = EXCLUDED.run_id,
        run_date = EXCLUDED.run_date,
        as_of = EXCLUDED.as_of,
        failure_reason = NULL,
        refused_recipients = '{}'
    WHERE r.status IN ('failed', 'no_address')
       OR (r.status = 'sending'
           AND (r.claimed_at < now() - make_interval(mins => %(lease_minutes)s)
                OR r.run_id = EXCLUDED.run_id))
    RETURNING r.id, r.station_id, r.message_id
)
SELECT c.id, c.station_id, c.message_id, s.name, s.report_emails,
       s.report_csv_encoding, s.contact_phone, s.contact_fax, s.contact_email,
       s.postal_address,
       (SELECT p.as_of
        FROM net119.station_reports AS p
        WHERE p.station_id = c.station_id
          AND p.status = 'sent'
          AND p.id <> c.id
        ORDER BY p.sent_at DESC, p.id DESC
        LIMIT 1) AS previous_as_of
FROM claimed AS c
JOIN net119.stations AS s ON s.id = c.station_id
ORDER BY c.station_id
