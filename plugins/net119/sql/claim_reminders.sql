-- Claim one step for each given user before anything is sent. A new step gets
-- a fresh VERP token and Message-ID; a retried step keeps both, so a crash
-- between the server's acceptance and the record resends the same message.
WITH source AS (
    SELECT u.id, u.email, u.expires_at,
           left(replace(gen_random_uuid()::text, '-', ''), 20) AS token
    FROM net119.users AS u
    WHERE u.id = ANY(%(user_ids)s)
)
INSERT INTO net119.reminders AS r (
    user_id, cycle_expires_at, offset_days, kind, outcome, due_on, run_date,
    recipient, message_id, verp_token, attempts, claimed_at, outcome_at, run_id
)
SELECT s.id, s.expires_at, %(offset)s, 'auto', 'sending',
       (s.expires_at AT TIME ZONE 'Asia/Tokyo')::date + %(offset)s,
       %(run_date)s, s.email,
       '<' || s.token || '@' || %(domain)s || '>', s.token,
       1, now(), now(), %(run_id)s
FROM source AS s
ON CONFLICT (user_id, cycle_expires_at, offset_days) WHERE kind = 'auto'
DO UPDATE SET
    outcome = 'sending',
    attempts = r.attempts + 1,
    claimed_at = now(),
    outcome_at = now(),
    run_date = EXCLUDED.run_date,
    run_id = EXCLUDED.run_id,
    recipient = EXCLUDED.recipient,
    failure_reason = NULL,
    smtp_code = NULL,
    status_code = NULL,
    diagnostic = NULL
WHERE r.outcome = 'failed'
   OR (r.outcome = 'sending'
       AND (r.claimed_at < now() - make_interval(mins => %(lease_minutes)s)
            OR (r.run_id = EXCLUDED.run_id
                AND r.claimed_at < now() - interval '2 minutes')))
RETURNING r.id, r.user_id, r.cycle_expires_at, r.recipient, r.message_id, r.verp_token
