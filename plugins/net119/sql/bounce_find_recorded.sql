-- Find a bounce message already recorded under %(source_key)s, or a copy
-- with the same content digest recorded under another key. The row with the
-- same key comes first.
SELECT id, source_key = %(source_key)s AS same_key
FROM net119.bounce_messages
WHERE source_key = %(source_key)s
   OR content_sha256 = %(content_sha256)s
ORDER BY (source_key = %(source_key)s) DESC, id
LIMIT 1
