"""Every DAG imports cleanly, touches nothing while parsed, and is documented."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

DAGS_FOLDER = Path(__file__).resolve().parents[1] / "dags"


class ParseTimeAccess(AssertionError):
    """Raised when parsing a DAG file opens a database, connection or socket."""


@pytest.fixture(scope="module")
def dagbag():
    """Parse the DAG folder while database drivers, connections and sockets raise."""
    import psycopg2
    from airflow.dag_processing.dagbag import DagBag
    from airflow.sdk import BaseHook

    def forbidden(*args, **kwargs):
        raise ParseTimeAccess("a DAG file opened a connection while being parsed")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(psycopg2, "connect", forbidden)
        patch.setattr(BaseHook, "get_connection", classmethod(forbidden))
        patch.setattr(socket.socket, "connect", forbidden)
        patch.setenv("AIRFLOW_CONN_NET119_DB", "postgresql://parse-time-check@127.0.0.1:9/none")
        bag = DagBag(dag_folder=str(DAGS_FOLDER))
    return bag


def test_dags_import_without_errors(dagbag) -> None:
    assert dagbag.import_errors == {}


@pytest.mark.parametrize(
    "dag_id", ["net119_daily_reminders", "net119_manual_resend", "net119_record_renewal"]
)
def test_expected_dag_present(dagbag, dag_id: str) -> None:
    assert dag_id in dagbag.dag_ids


@pytest.mark.parametrize("dag_id", ["net119_manual_resend", "net119_record_renewal"])
def test_manual_dag_has_no_schedule(dagbag, dag_id: str) -> None:
    from airflow.sdk.definitions.timetables.simple import NullTimetable

    assert isinstance(dagbag.dags[dag_id].timetable, NullTimetable)


@pytest.mark.parametrize("attribute", ["tags", "doc_md"])
def test_every_dag_has(dagbag, attribute: str) -> None:
    missing = [dag_id for dag_id, dag in dagbag.dags.items() if not getattr(dag, attribute)]
    assert missing == []


def test_every_task_retries(dagbag) -> None:
    no_retries = [
        f"{dag_id}.{task.task_id}"
        for dag_id, dag in dagbag.dags.items()
        for task in dag.tasks
        if not task.retries
    ]
    assert no_retries == []


def test_daily_dag_schedule() -> None:
    from airflow.dag_processing.dagbag import DagBag
    from airflow.timetables.trigger import CronTriggerTimetable

    dag = DagBag(dag_folder=str(DAGS_FOLDER / "net119_daily_reminders.py")).dags[
        "net119_daily_reminders"
    ]
    assert isinstance(dag.timetable, CronTriggerTimetable)
    assert dag.timetable._expression == "0 9 * * *"
    assert str(dag.timetable._timezone.name) == "Asia/Tokyo"
    assert dag.catchup is False


def test_daily_dag_maps_13_steps() -> None:
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(dag_folder=str(DAGS_FOLDER / "net119_daily_reminders.py")).dags[
        "net119_daily_reminders"
    ]
    send = dag.get_task("send_reminders")
    assert send._get_specified_expand_input().value["offset"] == [
        -90, -60, -45, -30, -20, -10, 0, 30, 60, 90, 120, 150, 180,
    ]
