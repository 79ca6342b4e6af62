-- Record which Airflow run recorded a renewal.
UPDATE net119.renewals
SET run_id = %(run_id)s
WHERE id = %(renewal_id)s
