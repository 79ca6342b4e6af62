-- Reminder steps handled by the run of one date, counted per offset and
-- outcome. Manual resends have no offset and sort last.
SELECT offset_days, outcome, count(*) AS reminders
FROM net119.reminders
WHERE run_date = %(run_date)s
GROUP BY offset_days, outcome
ORDER BY offset_days NULLS LAST, outcome
