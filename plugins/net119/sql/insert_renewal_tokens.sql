-- Store the SHA-256 of each renewal-link token with its reminder; used with
-- psycopg2's execute_values, which fills in the VALUES list.
INSERT INTO net119.renewal_tokens (token_hash, reminder_id)
VALUES %s
