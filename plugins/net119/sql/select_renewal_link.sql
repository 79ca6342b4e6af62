-- The reminder behind a renewal link, with what the confirmation page shows:
-- the user's name, status and expiry, and the station's name and contacts.
SELECT t.token_hash,
       r.id AS reminder_id,
       r.user_id,
       r.outcome,
       r.cycle_expires_at,
       u.name AS user_name,
       u.status,
       u.expires_at,
       s.name AS station_name,
       s.contact_phone,
       s.contact_fax,
       s.contact_email
FROM net119.renewal_tokens AS t
JOIN net119.reminders AS r ON r.id = t.reminder_id
JOIN net119.users AS u ON u.id = r.user_id
JOIN net119.stations AS s ON s.id = u.station_id
WHERE t.token_hash = %(token_hash)s
