-- Number of the given stations whose report of %(period_key)s is still
-- 'sending' under a claim this attempt did not get, because another run holds
-- it or because the lease of a crashed attempt has not run out yet.
SELECT count(*)
FROM net119.station_reports AS r
WHERE r.station_id = ANY(%(station_ids)s)
  AND r.period_key = %(period_key)s
  AND r.status = 'sending'
  AND NOT (r.id = ANY(%(claimed_ids)s::bigint[]))
