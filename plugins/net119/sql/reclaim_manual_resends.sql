-- Claim again the failed manual resends of a retried run. Each keeps its
-- Message-ID and VERP token, so a mail the server accepted just before the
-- connection dropped comes again with the same Message-ID.
UPDATE net119.reminders AS r
SET outcome = 'sending',
    attempts = r.attempts + 1,
    claimed_at = now(),
    outcome_at = now(),
    failure_reason = NULL,
    smtp_code = NULL,
    status_code = NULL,
    diagnostic = NULL
WHERE r.id = ANY(%(reminder_ids)s::bigint[])
  AND r.kind = 'manual'
  AND r.outcome = 'failed'
RETURNING r.id, r.user_id
