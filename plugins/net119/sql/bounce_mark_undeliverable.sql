-- Mark one reminder undeliverable after a final delivery failure. Only a
-- reminder that went out, or may have gone out, changes: 'sending' (the
-- record after the SMTP transaction was lost) and 'failed' (the connection
-- dropped after the server took the message) are proved sent by the bounce.
-- A confirmed reminder is never downgraded.
UPDATE net119.reminders AS r
SET outcome = 'undeliverable',
    sent_at = coalesce(r.sent_at, r.claimed_at),
    status_code = %(status_code)s,
    smtp_code = %(smtp_code)s,
    bounce_category = %(category)s,
    diagnostic = %(diagnostic)s,
    bounced_at = %(bounced_at)s,
    failure_reason = %(failure_reason)s,
    outcome_at = now()
WHERE r.id = %(reminder_id)s
  AND r.outcome IN ('sent', 'sending', 'failed')
RETURNING r.user_id
