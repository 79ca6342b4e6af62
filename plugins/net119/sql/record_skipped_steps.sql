-- Record the earlier steps of each claimed cycle that were never handled as
-- skipped, so a late run or a user imported mid-cycle gets no burst of stale
-- mails and the history shows why.
INSERT INTO net119.reminders (
    user_id, cycle_expires_at, offset_days, kind, outcome, due_on, run_date,
    failure_reason, outcome_at, run_id
)
SELECT c.user_id, c.cycle_expires_at, o.offset_days, 'auto', 'skipped',
       (c.cycle_expires_at AT TIME ZONE 'Asia/Tokyo')::date + o.offset_days,
       %(run_date)s, %(reason)s, now(), %(run_id)s
FROM unnest(%(user_ids)s::bigint[], %(cycles)s::timestamptz[])
     AS c(user_id, cycle_expires_at)
CROSS JOIN unnest(%(earlier_offsets)s::integer[]) AS o(offset_days)
ON CONFLICT (user_id, cycle_expires_at, offset_days) WHERE kind = 'auto'
DO NOTHING
