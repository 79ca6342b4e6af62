-- Manual resends of the given users that run %(run_id)s claimed, whatever
-- their outcome, and those that any run claimed within the last
-- %(window_minutes)s minutes by the database clock and that may have reached
-- the user. A resend whose outcome is 'failed' never reached the user, so it
-- does not block a new resend by another run. Newest first per user.
SELECT r.id, r.user_id, r.run_id, r.outcome, r.claimed_at,
       r.run_id IS NOT DISTINCT FROM %(run_id)s AS this_run
FROM net119.reminders AS r
WHERE r.user_id = ANY(%(user_ids)s::bigint[])
  AND r.kind = 'manual'
  AND (r.run_id = %(run_id)s
       OR (r.claimed_at >= now() - make_interval(mins => %(window_minutes)s)
           AND r.outcome IN ('sending', 'sent', 'undeliverable', 'confirmed')))
ORDER BY r.user_id, r.claimed_at DESC, r.id DESC
