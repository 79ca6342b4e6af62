-- The reminder that went out with the returned Message-ID (angle brackets
-- included, as stored).
SELECT id, user_id, recipient, outcome
FROM net119.reminders
WHERE message_id = %(message_id)s
LIMIT 1
