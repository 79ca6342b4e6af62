-- Users among %(user_ids)s that run %(run_id)s has already renewed.
SELECT user_id, id
FROM net119.renewals
WHERE run_id = %(run_id)s
  AND user_id = ANY(%(user_ids)s::bigint[])
