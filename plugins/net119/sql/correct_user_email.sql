-- Replace a user's address and record the old and the new one in the same
-- statement. Inserts nothing when the user already has the given address.
WITH previous AS (
    SELECT id, email
    FROM net119.users
    WHERE id = %(user_id)s
),
changed AS (
    UPDATE net119.users AS u
    SET email = %(new_email)s,
        updated_at = now()
    FROM previous AS p
    WHERE u.id = p.id
      AND p.email <> %(new_email)s
    RETURNING u.id, p.email AS old_email
)
INSERT INTO net119.address_changes (
    user_id, old_email, new_email, changed_by, reason, run_id
)
SELECT c.id, c.old_email, %(new_email)s, %(changed_by)s, %(reason)s, %(run_id)s
FROM changed AS c
RETURNING id
