-- Store the outcome of one claimed station report. Only a row that is still
-- claimed changes, so a stale attempt cannot overwrite a newer one.
UPDATE net119.station_reports
SET status = %(status)s,
    sent_at = CASE WHEN %(status)s = 'sent' THEN now() ELSE sent_at END,
    recipients = %(recipients)s,
    refused_recipients = %(refused_recipients)s,
    csv_encoding = %(csv_encoding)s,
    undeliverable_count = %(undeliverable_count)s,
    not_renewed_count = %(not_renewed_count)s,
    at_risk_count = %(at_risk_count)s,
    new_lapsed_count = %(new_lapsed_count)s,
    new_at_risk_count = %(new_at_risk_count)s,
    letter_count = %(letter_count)s,
    replaced_cell_count = %(replaced_cell_count)s,
    failure_reason = %(failure_reason)s
WHERE id = %(report_id)s
  AND status = 'sending'
