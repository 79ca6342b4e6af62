-- The latest reminder sent to %(address)s in the window
-- (%(window_start)s, %(window_end)s], on the (lower(recipient), sent_at)
-- index. Used when a bounce carries neither a known VERP token nor a known
-- Message-ID.
SELECT id, user_id, recipient, outcome
FROM net119.reminders
WHERE lower(recipient) = lower(%(address)s)
  AND sent_at IS NOT NULL
  AND sent_at > %(window_start)s
  AND sent_at <= %(window_end)s
ORDER BY sent_at DESC, id DESC
LIMIT 1
