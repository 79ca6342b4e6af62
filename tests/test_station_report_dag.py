"""End-to-end runs of the station report step of net119_daily_reminders with dag.test()."""

from __future__ import annotations

import datetime as dt

import pytest
from factories import add_station, add_user, jst
from net119 import db as net119_db
from report_helpers import bounce, csv_attachment, read_csv, reports_to

UTC = dt.UTC
YOKOHAMA = "report@yokohama.example.jp"
REPORT_TASKS = ("list_report_batches", "send_station_reports")


def run_dag(day: dt.date):
    """Run the DAG for Asia/Tokyo date ``day`` at its scheduled 09:00 JST and return the run.

    The report tasks run without retries, so a failing batch ends the run at once.
    """
    from airflow.dag_processing.dagbag import DagBag

    dagbag = DagBag(dag_folder="dags/net119_daily_reminders.py")
    dag = dagbag.get_dag("net119_daily_reminders")
    for task_id in REPORT_TASKS:
        dag.get_task(task_id).retries = 0
    logical = dt.datetime.combine(day, dt.time(0, 0), tzinfo=UTC)
    return dag.test(logical_date=logical)


def task_states(dag_run, task_id: str) -> list[str | None]:
    return [ti.state for ti in dag_run.get_task_instances() if ti.task_id == task_id]


@pytest.fixture
def conn(airflow_env, db_url):
    connection = net119_db.connect(db_url)
    add_station(connection)
    yield connection
    connection.close()


def test_dag_mails_station_report_once_per_week(conn, airflow_env) -> None:
    smtp = airflow_env
    # Expired on 3 December after the 当日 reminder bounced: lapses as 不達 on the run.
    add_user(conn, 1, jst(2026, 12, 3, 18), name="山田 太郎")
    bounce(conn, 1, jst(2026, 12, 3, 9))
    # Expires in a year: neither reminded nor reported.
    add_user(conn, 2, jst(2027, 12, 20, 10))

    first = run_dag(dt.date(2026, 12, 4))

    assert first.state == "success"
    assert task_states(first, "send_station_reports") == ["success"]
    [report] = reports_to(smtp, YOKOHAMA)
    _, data = csv_attachment(report)
    [row] = read_csv(data, "utf-8-sig")
    assert (row["利用者ID"], row["失効理由"], row["新規"]) == ("1", "不達", "新規")
    assert row["失効日時"] == "2026-12-04T09:00:00+09:00"
    assert "案内書_1_山田 太郎.pdf" in {
        part.get_filename() for part in report.iter_attachments()
    }

    # Same week: the listing finds nothing, so the mapped task has no instance.
    second = run_dag(dt.date(2026, 12, 5))
    assert second.state == "success"
    assert task_states(second, "send_station_reports") in ([], ["skipped"])
    assert len(reports_to(smtp, YOKOHAMA)) == 1

    # Next week: reported again, and user 1 is no longer new.
    third = run_dag(dt.date(2026, 12, 7))
    assert third.state == "success"
    reports = reports_to(smtp, YOKOHAMA)
    assert len(reports) == 2
    _, data = csv_attachment(reports[1])
    [row] = read_csv(data, "utf-8-sig")
    assert (row["利用者ID"], row["新規"]) == ("1", "")
    with conn.cursor() as cur:
        cur.execute(
            "SELECT period_key, status, run_id IS NOT NULL FROM net119.station_reports ORDER BY id"
        )
        assert cur.fetchall() == [
            ("2026-W49", "sent", True),
            ("2026-W50", "sent", True),
        ]


def test_dag_station_without_address_fails_batch(conn, airflow_env, capfd) -> None:
    smtp = airflow_env
    add_station(conn, "st-zz-noaddr", "住所なし消防本部", ())
    add_user(conn, 1, jst(2026, 11, 1, 10))
    add_user(conn, 2, jst(2026, 11, 1, 10), station_id="st-zz-noaddr")

    dag_run = run_dag(dt.date(2026, 12, 4))

    assert dag_run.state == "failed"
    assert task_states(dag_run, "send_station_reports") == ["failed"]
    assert len(reports_to(smtp, YOKOHAMA)) == 1
    with conn.cursor() as cur:
        cur.execute(
            "SELECT station_id, status FROM net119.station_reports ORDER BY station_id"
        )
        assert cur.fetchall() == [
            ("st-yokohama", "sent"),
            ("st-zz-noaddr", "no_address"),
        ]
    # The task's error, as the task log and the failure notification show it.
    out, err = capfd.readouterr()
    assert (
        "StationReportError: station reports of period 2026-W49 need attention: "
        "no valid report address (set stations.report_emails): st-zz-noaddr"
    ) in out + err
