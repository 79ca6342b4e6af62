-- Station reports: the ledger of reports mailed to each station per period,
-- and the users each report listed.

-- One row per station and report period. The row is claimed ('sending')
-- before the SMTP transaction and marked 'sent' or 'failed' after it, so a
-- retried task sends a period's report once. A crash between the server's
-- acceptance and the record may resend that one report, with the same
-- Message-ID. 'no_address' marks a station that has no usable report address;
-- like 'failed', it is claimed again by the next attempt.
CREATE TABLE net119.station_reports (
    id                  bigserial PRIMARY KEY,
    station_id          text NOT NULL REFERENCES net119.stations (id),
    cadence             text NOT NULL
        CHECK (cadence IN ('daily', 'weekly', 'monthly')),
    -- '2026-12-04' (daily), '2026-W49' (ISO week, weekly) or '2026-12' (monthly).
    period_key          text NOT NULL,
    -- Asia/Tokyo dates; period_end is exclusive.
    period_start        date NOT NULL,
    period_end          date NOT NULL,
    status              text NOT NULL
        CHECK (status IN ('sending', 'sent', 'failed', 'no_address')),
    run_id              text,
    run_date            date,
    -- The run's reference time: the at-risk window is counted from it.
    as_of               timestamptz,
    attempts            integer NOT NULL DEFAULT 0,
    claimed_at          timestamptz,
    sent_at             timestamptz,
    message_id          text UNIQUE,
    recipients          text[] NOT NULL DEFAULT '{}',
    -- Report addresses that were invalid or that the SMTP server rejected.
    refused_recipients  text[] NOT NULL DEFAULT '{}',
    csv_encoding        text,
    undeliverable_count integer,
    not_renewed_count   integer,
    at_risk_count       integer,
    new_lapsed_count    integer,
    new_at_risk_count   integer,
    letter_count        integer,
    -- CSV cells in which characters outside CP932 were replaced with 〓.
    replaced_cell_count integer,
    -- Why the report was not sent, in words an operator reads.
    failure_reason      text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT station_reports_period_key UNIQUE (station_id, period_key)
);

CREATE INDEX station_reports_sent_idx
    ON net119.station_reports (station_id, sent_at DESC)
    WHERE status = 'sent';

-- The users a report listed, by list: 'undeliverable' and 'not_renewed'
-- (lapsed users by reason) and 'at_risk'. A user is new in a report when the
-- station's previous sent report did not list them in the same list.
CREATE TABLE net119.station_report_entries (
    report_id   bigint NOT NULL REFERENCES net119.station_reports (id) ON DELETE CASCADE,
    user_id     bigint NOT NULL,
    list        text NOT NULL
        CHECK (list IN ('undeliverable', 'not_renewed', 'at_risk')),
    is_new      boolean NOT NULL,
    PRIMARY KEY (report_id, user_id)
);
