-- Build the lapsed list and the at-risk list of every claimed station report
-- in one statement, and store the listed users as the report's entries.
-- %(report_ids)s and %(station_ids)s are parallel arrays, one element per
-- claimed report.
--
-- Lapsed list: every user of the station with status 'lapsed', by reason.
-- At-risk list: active users whose validity ends before %(at_risk_until)s and
-- whose latest reminder to their current address bounced. That reminder is
-- the one the lapse reason is computed from: the latest with outcome sent,
-- undeliverable or confirmed, by sent_at.
-- A user is new when the station's previous sent report did not list them in
-- the same list (every user is new in a station's first report).
WITH claimed AS (
    SELECT c.report_id,
           c.station_id,
           (SELECT p.id
            FROM net119.station_reports AS p
            WHERE p.station_id = c.station_id
              AND p.status = 'sent'
              AND p.id <> c.report_id
            ORDER BY p.sent_at DESC, p.id DESC
            LIMIT 1) AS previous_id
    FROM unnest(%(report_ids)s::bigint[], %(station_ids)s::text[])
        AS c (report_id, station_id)
),
candidates AS (
    SELECT c.report_id, c.previous_id,
           COALESCE(u.lapse_reason, 'not_renewed') AS list,
           u.id, u.station_id, u.name, u.email, u.status, u.lapse_reason,
           u.expires_at, u.lapsed_at, u.phone, u.fax, u.postal_code,
           u.postal_address
    FROM claimed AS c
    JOIN net119.users AS u
      ON u.station_id = c.station_id
     AND u.status = 'lapsed'
    UNION ALL
    SELECT c.report_id, c.previous_id,
           'at_risk' AS list,
           u.id, u.station_id, u.name, u.email, u.status, u.lapse_reason,
           u.expires_at, u.lapsed_at, u.phone, u.fax, u.postal_code,
           u.postal_address
    FROM claimed AS c
    JOIN net119.users AS u
      ON u.station_id = c.station_id
     AND u.status = 'active'
     AND u.expires_at < %(at_risk_until)s
),
listed AS (
    SELECT cand.*,
           evidence.outcome AS evidence_outcome,
           evidence.bounced_at,
           evidence.bounce_category,
           evidence.status_code,
           evidence.diagnostic,
           NOT EXISTS (
               SELECT 1
               FROM net119.station_report_entries AS e
               WHERE e.report_id = cand.previous_id
                 AND e.user_id = cand.id
                 AND e.list = cand.list
           ) AS is_new
    FROM candidates AS cand
    LEFT JOIN LATERAL (
        SELECT r.outcome,
               COALESCE(r.bounced_at, r.sent_at) AS bounced_at,
               r.bounce_category,
               r.status_code,
               r.diagnostic
        FROM net119.reminders AS r
        WHERE r.user_id = cand.id
          AND r.recipient = cand.email
          AND r.outcome IN ('sent', 'undeliverable', 'confirmed')
        ORDER BY r.sent_at DESC NULLS LAST, r.id DESC
        LIMIT 1
    ) AS evidence ON true
    WHERE cand.list <> 'at_risk'
       OR evidence.outcome = 'undeliverable'
),
saved AS (
    INSERT INTO net119.station_report_entries (report_id, user_id, list, is_new)
    SELECT report_id, id, list, is_new
    FROM listed
)
SELECT l.report_id,
       l.station_id,
       l.list,
       l.is_new,
       l.id,
       l.name,
       l.status,
       l.lapse_reason,
       l.expires_at,
       l.lapsed_at,
       l.email,
       l.phone,
       l.fax,
       l.postal_code,
       l.postal_address,
       last_attempt.at AS last_reminder_at,
       last_attempt.kind AS last_reminder_kind,
       last_attempt.offset_days AS last_reminder_offset,
       last_attempt.outcome AS last_reminder_outcome,
       last_attempt.recipient AS last_reminder_recipient,
       last_attempt.failure_reason AS last_reminder_failure,
       CASE WHEN l.evidence_outcome = 'undeliverable' THEN l.bounced_at END,
       CASE WHEN l.evidence_outcome = 'undeliverable' THEN l.bounce_category END,
       CASE WHEN l.evidence_outcome = 'undeliverable' THEN l.status_code END,
       CASE WHEN l.evidence_outcome = 'undeliverable' THEN l.diagnostic END
FROM listed AS l
-- The last reminder handled in any way but skipped, whatever its address.
LEFT JOIN LATERAL (
    SELECT COALESCE(h.sent_at, h.outcome_at) AS at,
           h.kind,
           h.offset_days,
           h.outcome,
           h.recipient,
           h.failure_reason
    FROM net119.reminder_history AS h
    WHERE h.user_id = l.id
      AND h.outcome <> 'skipped'
    ORDER BY COALESCE(h.sent_at, h.outcome_at) DESC, h.id DESC
    LIMIT 1
) AS last_attempt ON true
ORDER BY l.station_id,
         CASE l.list WHEN 'undeliverable' THEN 1 WHEN 'not_renewed' THEN 2 ELSE 3 END,
         l.is_new DESC,
         l.id
