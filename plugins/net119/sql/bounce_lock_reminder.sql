-- Lock a reminder that a bounce result applies to and return its outcome, so
-- a renewal confirmed at the same moment is seen before the bounce is applied.
SELECT outcome
FROM net119.reminders
WHERE id = %(reminder_id)s
FOR UPDATE
