-- Recompute the lapse reason of lapsed users from the latest reminder that went
-- to their current address (a rejection, a bounce or an address that no server
-- can take counts as undeliverable), and record every reason that changes. Limited to
-- %(user_ids)s unless it is NULL.
WITH computed AS (
    SELECT u.id,
           u.lapse_reason AS old_reason,
           CASE WHEN latest.unreachable
                THEN 'undeliverable' ELSE 'not_renewed' END AS new_reason
    FROM net119.users AS u
    LEFT JOIN LATERAL (
        SELECT r.outcome = 'undeliverable'
               OR (r.outcome = 'failed' AND r.failure_reason LIKE 'invalid address%%')
               AS unreachable
        FROM net119.reminders AS r
        WHERE r.user_id = u.id
          AND r.recipient = u.email
          AND (r.outcome IN ('sent', 'undeliverable', 'confirmed')
               OR (r.outcome = 'failed' AND r.failure_reason LIKE 'invalid address%%'))
        ORDER BY COALESCE(r.sent_at, r.outcome_at) DESC, r.id DESC
        LIMIT 1
    ) AS latest ON true
    WHERE u.status = 'lapsed'
      AND (%(user_ids)s::bigint[] IS NULL OR u.id = ANY(%(user_ids)s::bigint[]))
),
changed AS (
    UPDATE net119.users AS u
    SET lapse_reason = c.new_reason,
        updated_at = now()
    FROM computed AS c
    WHERE u.id = c.id
      AND u.lapse_reason IS DISTINCT FROM c.new_reason
    RETURNING u.id, c.old_reason, c.new_reason
),
events AS (
    INSERT INTO net119.status_events (
        user_id, occurred_at, old_status, new_status, old_reason, new_reason, cause, run_id
    )
    SELECT ch.id, %(now)s, 'lapsed', 'lapsed', ch.old_reason, ch.new_reason,
           %(cause)s, %(run_id)s
    FROM changed AS ch
    RETURNING new_reason
)
SELECT new_reason, count(*) FROM events GROUP BY new_reason
