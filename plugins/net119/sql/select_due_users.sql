-- Users whose step %(offset)s is the latest due one on the run date and not
-- yet handled in their current cycle, one keyset page at a time. A step that
-- failed, or whose claim was left behind by a crash, is due again: a claim of
-- the same run after 2 minutes (a retried task), of any run after the lease.
-- Claim ages use the database clock, never the run's logical time.
SELECT u.id
FROM net119.users AS u
WHERE u.expires_at >= %(window_start)s
  AND u.expires_at < %(window_end)s
  AND u.id > %(after_id)s
  AND NOT EXISTS (
      SELECT 1
      FROM net119.reminders AS r
      WHERE r.user_id = u.id
        AND r.kind = 'auto'
        AND r.cycle_expires_at = u.expires_at
        AND r.offset_days >= %(offset)s
        AND NOT (
            r.offset_days = %(offset)s
            AND (r.outcome = 'failed'
                 OR (r.outcome = 'sending'
                     AND (r.claimed_at < now() - make_interval(mins => %(lease_minutes)s)
                          OR (r.run_id = %(run_id)s
                              AND r.claimed_at < now() - interval '2 minutes'))))
        )
  )
ORDER BY u.id
LIMIT %(batch_size)s
