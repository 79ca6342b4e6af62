-- Records of actions that station staff and operators trigger by hand: the
-- audit trail of corrected e-mail addresses, and the run that recorded a
-- renewal confirmed by phone, FAX or post.

-- One row per address correction, written in the same transaction as the
-- change of net119.users.email and before any mail goes to the new address.
CREATE TABLE net119.address_changes (
    id              bigserial PRIMARY KEY,
    user_id         bigint NOT NULL REFERENCES net119.users (id),
    old_email       text NOT NULL,
    new_email       text NOT NULL,
    -- Airflow user who triggered the run, and the reason they entered.
    changed_by      text NOT NULL,
    reason          text NOT NULL,
    run_id          text,
    changed_at      timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX address_changes_user_idx ON net119.address_changes (user_id, changed_at);

-- The double-submit guard looks up the recent manual resends of each user.
CREATE INDEX reminders_manual_user_idx
    ON net119.reminders (user_id, claimed_at)
    WHERE kind = 'manual';

-- The Airflow run that recorded a renewal by hand. A run records at most one
-- renewal per user, so a retried task cannot extend a validity twice.
ALTER TABLE net119.renewals ADD COLUMN IF NOT EXISTS run_id text;

CREATE UNIQUE INDEX renewals_run_user_key
    ON net119.renewals (run_id, user_id)
    WHERE run_id IS NOT NULL;

-- A run resends to a user at most once; a retried task finds its own row.
CREATE UNIQUE INDEX reminders_manual_run_user_key
    ON net119.reminders (run_id, user_id)
    WHERE kind = 'manual' AND run_id IS NOT NULL;
