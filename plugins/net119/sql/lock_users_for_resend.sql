-- Lock the requested users in id order and read their current address. Two
-- manual runs for the same users wait here for each other, in an order that
-- cannot deadlock, so the second one reads the first one's claims.
SELECT id, email
FROM net119.users
WHERE id = ANY(%(user_ids)s::bigint[])
ORDER BY id
FOR UPDATE
