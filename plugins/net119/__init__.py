"""Domain package of the NET119 renewal pipeline.

The package contains everything that is not Airflow wiring: the schema migrations,
the reminder schedule, mail composition and sending, expiry transitions, bounce
handling, the renewal web app, station reports and manual resends. DAG files in
``dags/`` call into it, and the tests call it without a scheduler.
"""
