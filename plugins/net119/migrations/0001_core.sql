-- Core tables of the renewal pipeline: stations, users, the reminder ledger,
-- renewal tokens, renewals and status events, plus the views that the NET119
-- application reads.

CREATE TABLE net119.stations (
    id              text PRIMARY KEY,
    name            text NOT NULL,
    report_emails   text[] NOT NULL DEFAULT '{}',
    -- Contact details printed in reminders and notice letters.
    contact_phone   text NOT NULL DEFAULT '',
    contact_fax     text NOT NULL DEFAULT '',
    contact_email   text NOT NULL DEFAULT '',
    postal_address  text NOT NULL DEFAULT '',
    -- Encoding of the CSV attachment of station reports.
    report_csv_encoding text NOT NULL DEFAULT 'utf-8-sig'
        CHECK (report_csv_encoding IN ('utf-8-sig', 'cp932')),
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE net119.users (
    id              bigint PRIMARY KEY,
    station_id      text NOT NULL REFERENCES net119.stations (id),
    name            text NOT NULL,
    -- Stored exactly as given: pre-2009 carrier addresses such as
    -- "taro..yamada.@docomo.ne.jp" are real and must be mailed as they are.
    email           text NOT NULL,
    expires_at      timestamptz NOT NULL,
    status          text NOT NULL DEFAULT 'active'
        CHECK (status IN ('active', 'lapsed')),
    lapse_reason    text
        CHECK (lapse_reason IN ('undeliverable', 'not_renewed')),
    lapsed_at       timestamptz,
    phone           text NOT NULL DEFAULT '',
    fax             text NOT NULL DEFAULT '',
    postal_code     text NOT NULL DEFAULT '',
    postal_address  text NOT NULL DEFAULT '',
    registered_at   timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT users_reason_only_when_lapsed
        CHECK (status = 'lapsed' OR lapse_reason IS NULL)
);

-- The due query of each offset is a range scan on expires_at, so its cost
-- depends on the number of users due that day, not on the table size.
CREATE INDEX users_expires_at_idx ON net119.users (expires_at, id);
CREATE INDEX users_station_status_idx ON net119.users (station_id, status);
CREATE INDEX users_active_expiry_idx ON net119.users (expires_at)
    WHERE status = 'active';

-- The reminder ledger. A row is claimed ('sending') before the SMTP
-- transaction and marked with its outcome after it, which is what makes every
-- task safe to rerun.
CREATE TABLE net119.reminders (
    id                  bigserial PRIMARY KEY,
    user_id             bigint NOT NULL REFERENCES net119.users (id),
    cycle_expires_at    timestamptz NOT NULL,
    offset_days         integer,
    kind                text NOT NULL DEFAULT 'auto'
        CHECK (kind IN ('auto', 'manual')),
    outcome             text NOT NULL
        CHECK (outcome IN ('sending', 'sent', 'undeliverable', 'confirmed',
                           'skipped', 'failed')),
    -- Asia/Tokyo date the step fell due, and the run date that handled it.
    due_on              date,
    run_date            date,
    recipient           text,
    message_id          text UNIQUE,
    verp_token          text UNIQUE,
    attempts            integer NOT NULL DEFAULT 0,
    claimed_at          timestamptz,
    sent_at             timestamptz,
    outcome_at          timestamptz NOT NULL DEFAULT now(),
    -- Why a send failed or a step was skipped, in words an operator reads.
    failure_reason      text,
    smtp_code           integer,
    -- Bounce or rejection details: enhanced status code (5.1.1), reason
    -- category (user_unknown, filtered, ...) and the diagnostic text.
    status_code         text,
    bounce_category     text,
    diagnostic          text,
    bounced_at          timestamptz,
    confirmed_at        timestamptz,
    run_id              text,
    requested_by        text,
    request_reason      text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT reminders_auto_has_offset
        CHECK ((kind = 'auto') = (offset_days IS NOT NULL))
);

CREATE UNIQUE INDEX reminders_auto_step_key
    ON net119.reminders (user_id, cycle_expires_at, offset_days)
    WHERE kind = 'auto';
CREATE INDEX reminders_user_idx ON net119.reminders (user_id, id);
CREATE INDEX reminders_run_date_idx ON net119.reminders (run_date);
CREATE INDEX reminders_recipient_sent_idx ON net119.reminders (recipient, sent_at);

-- Renewal links. Only the SHA-256 of each token is stored; every attempt to
-- mail a reminder gets its own token, and all of them lead to that reminder.
CREATE TABLE net119.renewal_tokens (
    token_hash      bytea PRIMARY KEY,
    reminder_id     bigint NOT NULL REFERENCES net119.reminders (id),
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX renewal_tokens_reminder_idx ON net119.renewal_tokens (reminder_id);

CREATE TABLE net119.renewals (
    id                  bigserial PRIMARY KEY,
    user_id             bigint NOT NULL REFERENCES net119.users (id),
    renewed_at          timestamptz NOT NULL,
    old_expires_at      timestamptz NOT NULL,
    new_expires_at      timestamptz NOT NULL,
    via                 text NOT NULL
        CHECK (via IN ('link', 'phone', 'fax', 'post', 'operator')),
    reminder_id         bigint REFERENCES net119.reminders (id),
    recorded_by         text,
    note                text,
    created_at          timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX renewals_user_idx ON net119.renewals (user_id, renewed_at);

-- One row per status change (R6): old and new value, the reason and the run.
CREATE TABLE net119.status_events (
    id              bigserial PRIMARY KEY,
    user_id         bigint NOT NULL REFERENCES net119.users (id),
    occurred_at     timestamptz NOT NULL,
    old_status      text NOT NULL,
    new_status      text NOT NULL,
    old_reason      text,
    new_reason      text,
    cause           text NOT NULL,
    run_id          text
);

CREATE INDEX status_events_user_idx ON net119.status_events (user_id, occurred_at);

-- The reminder history as the NET119 application reads it. An interrupted
-- send ('sending') counts as failed: it is retried while the step is due.
CREATE VIEW net119.reminder_history AS
SELECT
    r.id,
    r.user_id,
    r.cycle_expires_at,
    r.offset_days,
    r.kind,
    CASE WHEN r.outcome = 'sending' THEN 'failed' ELSE r.outcome END AS outcome,
    r.recipient,
    r.message_id,
    r.sent_at,
    r.due_on,
    r.outcome_at,
    r.failure_reason,
    r.status_code,
    r.bounce_category,
    r.diagnostic,
    r.confirmed_at,
    r.requested_by,
    r.request_reason
FROM net119.reminders AS r;

-- Emergency and practice calls work in every state. Call-back and mail
-- management need a working address, so they stop for users lapsed because
-- mail did not arrive.
CREATE VIEW net119.user_capabilities AS
SELECT
    u.id AS user_id,
    true AS emergency_call,
    true AS practice_call,
    NOT (u.status = 'lapsed' AND u.lapse_reason IS NOT DISTINCT FROM 'undeliverable')
        AS call_back,
    NOT (u.status = 'lapsed' AND u.lapse_reason IS NOT DISTINCT FROM 'undeliverable')
        AS mail_management
FROM net119.users AS u;
