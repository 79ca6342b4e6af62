-- Look up one message from the bounce mailbox. Returns one row: the recorded
-- message with the same content digest, if any (the one recorded under this
-- message's key or its alternate key first), whether it was recorded under
-- one of those keys, and whether %(source_key)s is taken by a message with
-- other content, as after an IMAP mailbox was replaced by one that reuses
-- UIDVALIDITY and UID values.
SELECT
    c.id,
    coalesce(c.source_key IN (%(source_key)s, %(alternate_key)s), false) AS same_key,
    EXISTS (
        SELECT 1
        FROM net119.bounce_messages AS k
        WHERE k.source_key = %(source_key)s
          AND k.content_sha256 <> %(content_sha256)s
    ) AS key_taken
FROM (SELECT 1) AS one
LEFT JOIN LATERAL (
    SELECT m.id, m.source_key
    FROM net119.bounce_messages AS m
    WHERE m.content_sha256 = %(content_sha256)s
    ORDER BY (m.source_key IN (%(source_key)s, %(alternate_key)s)) DESC, m.id
    LIMIT 1
) AS c ON true
