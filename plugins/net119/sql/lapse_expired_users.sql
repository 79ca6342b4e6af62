-- Lapse every active user whose validity ended at or before %(now)s. The reason
-- is 'undeliverable' when the latest reminder that went to the user's current
-- address failed permanently (rejected, bounced, or an address that no server
-- can take), and 'not_renewed' otherwise. Each change is
-- recorded as a status event in the same statement.
WITH expired AS (
    SELECT u.id,
           COALESCE(latest.unreachable, false) AS bounced
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
    WHERE u.status = 'active'
      AND u.expires_at <= %(now)s
),
changed AS (
    UPDATE net119.users AS u
    SET status = 'lapsed',
        lapse_reason = CASE WHEN e.bounced THEN 'undeliverable' ELSE 'not_renewed' END,
        lapsed_at = %(now)s,
        updated_at = now()
    FROM expired AS e
    WHERE u.id = e.id
      AND u.status = 'active'
      -- A renewal that committed after the scan moved expires_at on.
      AND u.expires_at <= %(now)s
    RETURNING u.id, u.lapse_reason
),
events AS (
    INSERT INTO net119.status_events (
        user_id, occurred_at, old_status, new_status, old_reason, new_reason, cause, run_id
    )
    SELECT c.id, %(now)s, 'active', 'lapsed', NULL, c.lapse_reason, 'expired', %(run_id)s
    FROM changed AS c
    RETURNING new_reason
)
SELECT new_reason, count(*) FROM events GROUP BY new_reason
