-- Bounce ingestion: every message read from the bounce mailbox, what each
-- recipient named in it reported, and the views operators read to find the
-- bounces that matched no reminder and the messages set aside unread.

CREATE TABLE net119.bounce_messages (
    id                  bigserial PRIMARY KEY,
    -- Key of the message at its source: "sha256:<hex>" for a Maildir file,
    -- "imap:<UIDVALIDITY>:<UID>" for an IMAP message. A message recorded
    -- here is only acknowledged at the source when it is read again. A key
    -- already recorded for other content gets the suffix "#<digest prefix>".
    source_key          text NOT NULL UNIQUE,
    -- SHA-256 of the raw bytes with CRLF line ends read as LF, so a copy
    -- under another key (an IMAP mailbox renumbered after a UIDVALIDITY
    -- change, or the same bounce in IMAP and in a Maildir) is recognised.
    content_sha256      bytea NOT NULL,
    -- When our mail server received the bounce: the newest Received header,
    -- else the Date header, else the ingesting run's reference time.
    received_at         timestamptz NOT NULL,
    ingested_at         timestamptz NOT NULL DEFAULT now(),
    run_id              text,
    -- Parser verdict; NULL only for a message quarantined before parsing.
    kind                text
        CHECK (kind IN ('dsn', 'carrier_notice', 'non_standard_bounce',
                        'auto_reply', 'delayed', 'unrecognised')),
    -- matched: at least one recipient result is linked to a reminder.
    -- unmatched: nothing linked, and the message may report a failure or is
    --   unreadable, so operators look at it.
    -- ignored: nothing linked and nothing failed (automatic replies, delays,
    --   delivery reports), or a copy of a recorded message under another key.
    -- quarantined: oversized or no mail message at all.
    outcome             text NOT NULL
        CHECK (outcome IN ('matched', 'unmatched', 'ignored', 'quarantined')),
    quarantine_reason   text
        CHECK (quarantine_reason IN ('oversized', 'unparseable')),
    quarantine_detail   text,
    duplicate_of        bigint REFERENCES net119.bounce_messages (id),
    size_bytes          integer NOT NULL CHECK (size_bytes >= 0),
    verp_token          text,
    -- Message-ID of the returned original, with angle brackets.
    original_message_id text,
    original_sent_at    timestamptz,
    reporting_mta       text,
    detected_by         text[] NOT NULL DEFAULT '{}',
    -- Reminder named by the VERP token or the returned Message-ID, also when
    -- the message has no readable recipient.
    reminder_id         bigint REFERENCES net119.reminders (id),
    correlated_by       text CHECK (correlated_by IN ('verp', 'message_id')),
    -- The raw message, kept for unmatched, quarantined and unrecognised
    -- messages and for messages with a failed recipient that matched no
    -- reminder. Cut at the ingestion's limit; raw_truncated says so.
    raw                 bytea CHECK (octet_length(raw) <= 4194304),
    raw_truncated       boolean NOT NULL DEFAULT false,
    CONSTRAINT bounce_messages_quarantine_reason
        CHECK ((outcome = 'quarantined') = (quarantine_reason IS NOT NULL)),
    CONSTRAINT bounce_messages_correlation
        CHECK ((reminder_id IS NULL) = (correlated_by IS NULL))
);

CREATE INDEX bounce_messages_sha256_idx ON net119.bounce_messages (content_sha256);
CREATE INDEX bounce_messages_for_operators_idx ON net119.bounce_messages (received_at)
    WHERE outcome IN ('unmatched', 'quarantined');

-- One row per recipient that a bounce names, in the order of the message.
CREATE TABLE net119.bounce_results (
    id                  bigserial PRIMARY KEY,
    bounce_message_id   bigint NOT NULL REFERENCES net119.bounce_messages (id),
    position            integer NOT NULL,
    reminder_id         bigint REFERENCES net119.reminders (id),
    -- verp: the token in the bounce's return address; message_id: the
    -- returned Message-ID; recipient_time: the latest reminder sent to the
    -- address shortly before the bounce.
    correlated_by       text CHECK (correlated_by IN ('verp', 'message_id', 'recipient_time')),
    recipient           text,
    original_recipient  text,
    -- DSN Action (failed, delayed, delivered, relayed, expanded); NULL for
    -- automatic replies and formats without one.
    action              text,
    status_code         text,
    smtp_code           integer,
    diagnostic          text,
    category            text
        CHECK (category IN ('user_unknown', 'host_unknown', 'mailbox_full',
                            'filtered', 'suspended', 'expired', 'other')),
    is_final_failure    boolean NOT NULL,
    carrier             text,
    -- What the result did to its reminder:
    -- marked_undeliverable: the reminder became 'undeliverable';
    -- already_undeliverable: it was so before;
    -- kept_confirmed: a confirmed renewal proves delivery, so no change;
    -- kept_delivered: the same bounce reports delivery to the reminder's
    --   own address (a forwarded copy failed), so no change;
    -- none: not a final failure, or no reminder matched.
    effect              text NOT NULL
        CHECK (effect IN ('marked_undeliverable', 'already_undeliverable',
                          'kept_confirmed', 'kept_delivered', 'none')),
    CONSTRAINT bounce_results_position_key UNIQUE (bounce_message_id, position),
    CONSTRAINT bounce_results_correlation
        CHECK ((reminder_id IS NULL) = (correlated_by IS NULL))
);

CREATE INDEX bounce_results_reminder_idx ON net119.bounce_results (reminder_id)
    WHERE reminder_id IS NOT NULL;

-- Correlation by recipient and send time compares addresses without regard
-- to case, because mail servers may change the case of what they report.
CREATE INDEX reminders_recipient_lower_sent_idx
    ON net119.reminders (lower(recipient), sent_at)
    WHERE sent_at IS NOT NULL;

-- Bounces for operators to look at: messages that matched no reminder, and
-- matched messages that also name a failed recipient that matched nothing.
CREATE VIEW net119.unmatched_bounces AS
SELECT
    m.id AS bounce_message_id,
    m.source_key,
    m.received_at,
    m.ingested_at,
    m.kind,
    m.outcome,
    m.verp_token,
    m.original_message_id,
    m.reminder_id,
    m.size_bytes,
    m.raw IS NOT NULL AS raw_kept,
    m.raw_truncated,
    coalesce(r.recipients, '{}') AS unmatched_recipients,
    coalesce(r.categories, '{}') AS categories,
    coalesce(r.failed, 0) AS unmatched_failures,
    r.first_diagnostic
FROM net119.bounce_messages AS m
LEFT JOIN LATERAL (
    SELECT array_agg(b.recipient ORDER BY b.position) AS recipients,
           array_agg(b.category ORDER BY b.position) AS categories,
           count(*) FILTER (WHERE b.is_final_failure) AS failed,
           (array_agg(b.diagnostic ORDER BY b.position)
                FILTER (WHERE b.diagnostic IS NOT NULL))[1] AS first_diagnostic
    FROM net119.bounce_results AS b
    WHERE b.bounce_message_id = m.id
      AND b.reminder_id IS NULL
) AS r ON true
WHERE m.outcome = 'unmatched'
   OR (m.outcome = 'matched' AND r.failed > 0);

-- Messages set aside without processing: too large, or no mail message.
CREATE VIEW net119.quarantined_bounces AS
SELECT
    m.id AS bounce_message_id,
    m.source_key,
    m.received_at,
    m.ingested_at,
    m.quarantine_reason,
    m.quarantine_detail,
    m.size_bytes,
    m.raw IS NOT NULL AS raw_kept,
    m.raw_truncated
FROM net119.bounce_messages AS m
WHERE m.outcome = 'quarantined';
