-- The ids among %(user_ids)s that belong to a user.
SELECT id
FROM net119.users
WHERE id = ANY(%(user_ids)s::bigint[])
