-- The privileges that the renewal web app needs, and no more, for a database
-- role that only serves the renewal page. {role} is the role's name: run it
-- with psycopg2.sql formatting, or sed 's/{role}/net119_web/g' | psql.
GRANT USAGE ON SCHEMA net119 TO {role};
GRANT SELECT ON net119.renewal_tokens, net119.stations TO {role};
GRANT SELECT, UPDATE ON net119.reminders, net119.users TO {role};
GRANT SELECT, INSERT ON net119.renewals TO {role};
GRANT INSERT ON net119.status_events TO {role};
GRANT USAGE ON SEQUENCE net119.renewals_id_seq, net119.status_events_id_seq TO {role};
