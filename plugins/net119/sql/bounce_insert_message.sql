-- Record one message read from the bounce mailbox.
INSERT INTO net119.bounce_messages (
    source_key, content_sha256, received_at, run_id, kind, outcome,
    quarantine_reason, quarantine_detail, duplicate_of, size_bytes, verp_token,
    original_message_id, original_sent_at, reporting_mta, detected_by,
    reminder_id, correlated_by, raw, raw_truncated
)
VALUES (
    %(source_key)s, %(content_sha256)s, %(received_at)s, %(run_id)s, %(kind)s,
    %(outcome)s, %(quarantine_reason)s, %(quarantine_detail)s, %(duplicate_of)s,
    %(size_bytes)s, %(verp_token)s, %(original_message_id)s,
    %(original_sent_at)s, %(reporting_mta)s, %(detected_by)s, %(reminder_id)s,
    %(correlated_by)s, %(raw)s, %(raw_truncated)s
)
RETURNING id
