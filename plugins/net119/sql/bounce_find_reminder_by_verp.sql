-- The reminder whose return path carried the VERP token. Tokens are stored
-- as generated; %(tokens)s contains the token as found and in lower case,
-- because some mail servers change the case of the local part.
SELECT id, user_id, recipient, outcome
FROM net119.reminders
WHERE verp_token = ANY(%(tokens)s::text[])
ORDER BY id
LIMIT 1
