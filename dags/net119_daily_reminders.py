"""
### NET119 daily renewal reminders (定期更新手続きのお願い)

Runs every day at 09:00 Asia/Tokyo. The run's date D is the Asia/Tokyo date of
its logical date, and the logical time is "now" for expiry transitions.

1. **migrate_schema** brings the `net119` schema up to date.
2. **ingest_bounces** reads the bounce mailbox (Airflow connection
   `net119_bounces`, else the Maildir in `NET119_BOUNCE_MAILDIR`) and records
   each bounce once. It marks the bounced reminder 不達 and re-evaluates lapse
   reasons. Without a mailbox it logs that ingestion is not configured.
3. **apply_expiry_transitions** lapses users whose validity ended (失効中) with
   the reason 不達 (`undeliverable`) or 未更新 (`not_renewed`).
4. **send_reminders** runs once per schedule step (90日前 … 当日 … 180日後). Each
   instance sends the step to the users for whom it is the latest due step,
   records earlier unhandled steps as skipped, and returns counts: due, sent,
   skipped, failed, undeliverable.
5. **list_report_batches** and **send_station_reports** mail each station its
   report of lapsed (失効中) and at-risk users, once per report period
   (`NET119_REPORT_CADENCE`: daily, weekly (default) or monthly). The first
   lists the stations still owed the current period's report in batches
   (`NET119_REPORT_BATCH_SIZE`, default 50), and none on days when no report
   is due. The second runs once per batch, returns counts (reported, skipped,
   without address, failed) and, after finishing its batch, fails naming the
   stations without a report address or whose report could not be sent. See
   docs/station-reports.md.

Every task is safe to rerun: the reminder ledger is claimed before sending and
marked after, so a rerun for the same date sends nothing twice. A temporary
SMTP failure leaves the step `failed`, and later runs retry it while it is due.

Connections: `net119_db` (PostgreSQL) and `net119_smtp` (SMTP). Settings:
`NET119_*` environment variables (see the README).
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import dag, get_current_context, task
from airflow.timetables.trigger import CronTriggerTimetable
from net119.schedule import OFFSETS

default_args = {
    "owner": "net119",
    "retries": 3,
    "retry_delay": dt.timedelta(minutes=5),
    "retry_exponential_backoff": True,
    "max_retry_delay": dt.timedelta(hours=1),
}


@dag(
    dag_id="net119_daily_reminders",
    schedule=CronTriggerTimetable("0 9 * * *", timezone="Asia/Tokyo"),
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc),
    catchup=False,
    max_active_runs=1,
    default_args=default_args,
    tags=["net119", "reminders"],
    doc_md=__doc__,
)
def net119_daily_reminders():
    @task
    def migrate_schema() -> list[int]:
        from net119 import migrate, runtime

        with runtime.database() as conn:
            return migrate.migrate(conn)

    @task
    def ingest_bounces() -> dict[str, int]:
        from net119 import runtime
        from net119.bounces.configured import ingest_configured

        context = get_current_context()
        with runtime.database() as conn:
            counts = ingest_configured(
                conn, now=runtime.reference_time(context), run_id=runtime.run_id(context)
            )
        return counts.as_dict()

    @task
    def apply_expiry_transitions() -> dict[str, int]:
        from net119 import runtime, transitions

        context = get_current_context()
        with runtime.database() as conn:
            counts = transitions.apply_expiry_transitions(
                conn, now=runtime.reference_time(context), run_id=runtime.run_id(context)
            )
        return counts.as_dict()

    @task(map_index_template="{{ step_label }}", max_active_tis_per_dagrun=4)
    def send_reminders(offset: int) -> dict[str, object]:
        from net119 import reminders, runtime
        from net119.config import Settings
        from net119.schedule import offset_label

        context = get_current_context()
        context["step_label"] = offset_label(offset)
        with runtime.database() as conn:
            counts = reminders.send_step(
                conn,
                runtime.smtp_session,
                offset=offset,
                run_date=runtime.run_date(context),
                now=runtime.reference_time(context),
                settings=Settings.from_env(),
                run_id=runtime.run_id(context),
            )
        return counts.as_dict()

    @task
    def list_report_batches() -> list[list[str]]:
        from net119 import runtime
        from net119.reports import service
        from net119.reports.config import ReportSettings

        context = get_current_context()
        with runtime.database() as conn:
            return service.list_report_batches(
                conn,
                run_date=runtime.run_date(context),
                report_settings=ReportSettings.from_env(),
            )

    @task(map_index_template="{{ batch_label }}", max_active_tis_per_dagrun=2)
    def send_station_reports(station_ids: list[str]) -> dict[str, object]:
        from net119 import runtime
        from net119.config import Settings
        from net119.reports import service
        from net119.reports.config import ReportSettings

        context = get_current_context()
        context["batch_label"] = service.batch_label(station_ids)
        report_settings = ReportSettings.from_env()
        run_date = runtime.run_date(context)
        with runtime.database() as conn:
            counts = service.send_station_reports(
                conn,
                runtime.smtp_session,
                station_ids=station_ids,
                run_date=run_date,
                now=runtime.reference_time(context),
                settings=Settings.from_env(),
                report_settings=report_settings,
                run_id=runtime.run_id(context),
            )
            service.raise_for_problems(
                conn,
                station_ids,
                run_date=run_date,
                report_settings=report_settings,
                run_id=runtime.run_id(context),
            )
        return counts.as_dict()

    schema = migrate_schema()
    bounces = ingest_bounces()
    lapsed = apply_expiry_transitions()
    sent = send_reminders.expand(offset=list(OFFSETS))
    report_batches = list_report_batches()
    reports = send_station_reports.expand(station_ids=report_batches)

    schema >> bounces >> lapsed >> sent >> report_batches >> reports


net119_daily_reminders()
