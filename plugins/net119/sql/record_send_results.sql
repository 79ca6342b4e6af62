-- Store the outcome of each claimed reminder after its SMTP transaction.
-- Only rows still claimed change, so a stale task cannot overwrite a newer one.
UPDATE net119.reminders AS r
SET outcome = v.outcome,
    sent_at = CASE WHEN v.outcome IN ('sent', 'undeliverable') THEN now() ELSE r.sent_at END,
    smtp_code = v.smtp_code,
    status_code = v.status_code,
    diagnostic = v.diagnostic,
    bounce_category = v.category,
    failure_reason = v.failure_reason,
    outcome_at = now()
FROM (VALUES %s) AS v(id, outcome, smtp_code, status_code, diagnostic, category, failure_reason)
WHERE r.id = v.id
  AND r.outcome = 'sending'
