"""Station reports and notice letters.

Each station receives, once per report period, a mail listing its lapsed
users (失効中, by reason 不達 or 未更新) and its at-risk users (active, expiring
within 30 days, latest reminder bounced), with a CSV attachment and one notice
letter (案内書, PDF) per new 不達 or at-risk user.

Modules: ``period`` (cadence and due dates), ``config`` (``NET119_REPORT_*``
settings), ``ledger`` (claim and record in ``net119.station_reports``),
``rows`` (the set-based lists), ``csvfile``, ``summary``, ``letter``,
``message`` (the MIME mail) and ``service`` (one batch of stations, called by
the DAG).
"""
