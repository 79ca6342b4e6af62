-- Lock the users of a recorded renewal in id order, so concurrent runs for
-- the same users wait for each other in an order that cannot deadlock.
SELECT id, status, expires_at
FROM net119.users
WHERE id = ANY(%(user_ids)s::bigint[])
ORDER BY id
FOR UPDATE
