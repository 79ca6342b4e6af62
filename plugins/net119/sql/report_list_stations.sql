-- Stations whose report for %(period_key)s has not been sent yet, in id order.
SELECT s.id
FROM net119.stations AS s
WHERE NOT EXISTS (
    SELECT 1
    FROM net119.station_reports AS r
    WHERE r.station_id = s.id
      AND r.period_key = %(period_key)s
      AND r.status = 'sent'
)
ORDER BY s.id
