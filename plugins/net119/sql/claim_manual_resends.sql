-- Claim one manual resend per given user before anything is sent: a ledger
-- row 'sending' of kind 'manual' in the user's current cycle, to the user's
-- current address, with a fresh VERP token and Message-ID, and who asked and
-- why.
WITH source AS (
    SELECT u.id, u.email, u.expires_at,
           left(replace(gen_random_uuid()::text, '-', ''), 20) AS token
    FROM net119.users AS u
    WHERE u.id = ANY(%(user_ids)s::bigint[])
)
INSERT INTO net119.reminders (
    user_id, cycle_expires_at, offset_days, kind, outcome, run_date, recipient,
    message_id, verp_token, attempts, claimed_at, outcome_at, run_id,
    requested_by, request_reason
)
SELECT s.id, s.expires_at, NULL, 'manual', 'sending', %(run_date)s, s.email,
       '<' || s.token || '@' || %(domain)s || '>', s.token,
       1, now(), now(), %(run_id)s, %(requested_by)s, %(reason)s
FROM source AS s
RETURNING id, user_id
