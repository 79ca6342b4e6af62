-- Users to print notice letters for, with their station's contact details:
-- the users in %(user_ids)s, or else every lapsed 不達 user of station
-- %(station_id)s. Ordered by user id.
SELECT u.id, u.name, u.email, u.postal_code, u.postal_address, u.status,
       u.lapse_reason, u.expires_at, s.name, s.contact_phone, s.contact_fax,
       s.contact_email, s.postal_address
FROM net119.users AS u
JOIN net119.stations AS s ON s.id = u.station_id
WHERE (%(user_ids)s::bigint[] IS NOT NULL AND u.id = ANY(%(user_ids)s::bigint[]))
   OR (%(user_ids)s::bigint[] IS NULL
       AND u.station_id = %(station_id)s
       AND u.status = 'lapsed'
       AND u.lapse_reason = 'undeliverable')
ORDER BY u.id
