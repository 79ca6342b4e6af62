-- Content of the claimed rows' reminders, read after the claim so the
-- mail shows the current name and station.
SELECT r.id, r.user_id, r.cycle_expires_at, r.recipient, r.message_id, r.verp_token,
       u.name, s.name, s.contact_phone, s.contact_fax, s.contact_email
FROM net119.reminders AS r
JOIN net119.users AS u ON u.id = r.user_id
JOIN net119.stations AS s ON s.id = u.station_id
WHERE r.id = ANY(%(reminder_ids)s)
ORDER BY r.id
