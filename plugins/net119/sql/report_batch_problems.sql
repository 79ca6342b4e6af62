-- Reports of %(period_key)s for the given stations that operators must look
-- at: not sent (no usable report address, or the send failed), or sent by run
-- %(run_id)s while some report addresses were invalid or rejected by the SMTP
-- server.
SELECT station_id, status, failure_reason, cardinality(refused_recipients)
FROM net119.station_reports
WHERE period_key = %(period_key)s
  AND station_id = ANY(%(station_ids)s)
  AND (status IN ('failed', 'no_address')
       OR (status = 'sent'
           AND cardinality(refused_recipients) > 0
           AND run_id IS NOT DISTINCT FROM %(run_id)s))
ORDER BY station_id
