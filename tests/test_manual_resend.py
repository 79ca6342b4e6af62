"""Manual resends and recorded renewals: the DAGs on real servers, and the domain code.

The DAG tests run ``net119_manual_resend`` and ``net119_record_renewal`` with
``DAG.test(run_conf=...)`` against the test's PostgreSQL and aiosmtpd server.
Each run has no logical date, as a run triggered from the form in Airflow 3, so
its reference time is the moment it was triggered.
"""

from __future__ import annotations

import datetime as dt
import email
import json
import os
import re
import smtplib
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from email import policy
from pathlib import Path

import pytest

from factories import add_station, add_user, jst, user_state
from net119 import db as net119_db
from net119 import recorded_renewal, resend, transitions
from net119.config import Settings
from net119.mail.compose import hash_token
from net119.staff_requests import RequestValidationError, requester_name

ROOT = Path(__file__).resolve().parents[1]
REASON = "FAXでメールアドレスを確認したため再送信"
NOTE = "12月4日、本人からFAXで更新の申し出あり"
TABLES = (
    "users",
    "reminders",
    "renewal_tokens",
    "renewals",
    "status_events",
    "address_changes",
)


# Running the DAGs


def run_dag(dag_id: str, conf: dict):
    """Run ``dag_id`` once with ``conf`` as a form-triggered run, and return the run."""
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(dag_folder=str(ROOT / "dags" / f"{dag_id}.py")).get_dag(dag_id)
    return dag.test(logical_date=None, run_conf=conf)


def task_states(dag_run) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()}


def task_result(dag_run, task_id: str):
    """Return the value that ``task_id`` returned in ``dag_run``, from XCom."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.scalars(
            XComModel.get_many(
                run_id=dag_run.run_id,
                dag_ids=dag_run.dag_id,
                task_ids=task_id,
                key="return_value",
            )
        ).first()
        assert row is not None, f"{task_id} returned nothing in {dag_run.run_id}"
        return XComModel.deserialize_value(row)


def resend_conf(user_ids, **fields) -> dict:
    return {"user_ids": user_ids, "reason": REASON, **fields}


# Reading the database and the mails


def snapshot(conn) -> dict[str, list[tuple]]:
    """Return every row of the tables a manual run may change, in id order."""
    rows = {}
    with conn.cursor() as cur:
        for table in TABLES:
            cur.execute(f"SELECT * FROM net119.{table} ORDER BY 1")
            rows[table] = cur.fetchall()
    conn.rollback()
    return rows


def manual_history(conn, user_id: int) -> list[dict]:
    with conn.cursor() as cur:
        cur.execute(
            """
            SELECT id, kind, offset_days, outcome, recipient, message_id, requested_by,
                   request_reason, cycle_expires_at
            FROM net119.reminder_history
            WHERE user_id = %s AND kind = 'manual'
            ORDER BY id
            """,
            (user_id,),
        )
        names = [column.name for column in cur.description]
        found = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
    conn.rollback()
    return found


def parsed_mails(smtp, recipient: str) -> list[email.message.EmailMessage]:
    return [
        email.message_from_bytes(mail.data, policy=policy.default)
        for mail in smtp.messages
        if recipient in mail.recipients
    ]


def body_of(message: email.message.EmailMessage) -> str:
    return message.get_body(("plain",)).get_content()


def lapse_as_undeliverable(conn, user_id: int, expires_at: dt.datetime) -> None:
    """Record a rejected 180日後 reminder to the user's address and lapse the user."""
    with conn.cursor() as cur:
        cur.execute(
            """
            INSERT INTO net119.reminders (
                user_id, cycle_expires_at, offset_days, kind, outcome, recipient,
                sent_at, smtp_code, status_code
            )
            SELECT id, expires_at, 180, 'auto', 'undeliverable', email,
                   expires_at + interval '180 days', 550, '5.1.1'
            FROM net119.users WHERE id = %s
            """,
            (user_id,),
        )
    conn.commit()
    transitions.apply_expiry_transitions(conn, now=expires_at + dt.timedelta(days=181))


@pytest.fixture
def conn(airflow_env, db_url):
    connection = net119_db.connect(db_url)
    add_station(connection)
    yield connection
    connection.close()


# Validation through the DAG


PARAM_REJECTED = [
    pytest.param(resend_conf([]), id="empty-list"),
    pytest.param({"user_ids": [1]}, id="missing-reason"),
    pytest.param(resend_conf([1], reason="短い"), id="short-reason"),
    pytest.param(resend_conf(["1a", 2]), id="letters-in-id"),
    pytest.param(resend_conf([0]), id="zero-id"),
    pytest.param(resend_conf([1.5]), id="fraction"),
    pytest.param(resend_conf([1], force="yes"), id="force-not-boolean"),
]


@pytest.mark.parametrize("conf", PARAM_REJECTED)
def test_manual_resend_param_rejection_changes_nothing(conn, airflow_env, conf) -> None:
    from airflow.sdk.exceptions import ParamValidationError

    smtp = airflow_env
    add_user(conn, 1, jst(2026, 1, 10))
    before = snapshot(conn)

    with pytest.raises(ParamValidationError):
        run_dag("net119_manual_resend", conf)

    assert snapshot(conn) == before
    assert smtp.messages == []


TASK_REJECTED = [
    pytest.param(
        resend_conf([1, 404, 405]), "has no user with id 404, 405", id="unknown-ids"
    ),
    pytest.param(
        resend_conf([1, 2], corrected_email="new@docomo.ne.jp"),
        "given for 2 users",
        id="corrected-address-several-users",
    ),
    pytest.param(
        resend_conf([1], corrected_email="taro@@docomo.ne.jp"),
        "t***@docomo.ne.jp is invalid: address must contain exactly one @",
        id="malformed-address",
    ),
    pytest.param(
        resend_conf([1], reason="      "),
        "reason (再送信の理由) is missing",
        id="blank-reason",
    ),
]


@pytest.mark.parametrize(("conf", "message"), TASK_REJECTED)
def test_manual_resend_validation_changes_nothing(
    conn, airflow_env, capfd, conf, message
) -> None:
    smtp = airflow_env
    add_user(conn, 1, jst(2026, 1, 10))
    add_user(conn, 2, jst(2026, 1, 10))
    lapse_as_undeliverable(conn, 1, jst(2026, 1, 10))
    before = snapshot(conn)

    dag_run = run_dag("net119_manual_resend", conf)

    assert dag_run.state == "failed"
    states = task_states(dag_run)
    assert states["validate_request"] == "failed"
    assert states["resend_reminders"] == "upstream_failed"
    assert snapshot(conn) == before
    assert smtp.messages == []
    output = capfd.readouterr()
    assert message in output.out + output.err


@pytest.mark.parametrize("address", ["taro..yamada.@docomo.ne.jp", "a.@ezweb.ne.jp"])
def test_manual_resend_pre2009_address_accepted(conn, airflow_env, address) -> None:
    smtp = airflow_env
    add_user(conn, 1, jst(2026, 1, 10))

    dag_run = run_dag("net119_manual_resend", resend_conf([1], corrected_email=address))

    assert dag_run.state == "success"
    assert [mail.recipients for mail in smtp.messages] == [[address]]
    with conn.cursor() as cur:
        cur.execute("SELECT email FROM net119.users WHERE id = 1")
        assert cur.fetchone()[0] == address
        cur.execute("SELECT new_email FROM net119.address_changes WHERE user_id = 1")
        assert cur.fetchall() == [(address,)]


# Resending through the DAG


def test_manual_resend_lapsed_undeliverable_user(conn, airflow_env) -> None:
    smtp = airflow_env
    # Expired in January 2025: far past the last automatic step (180日後).
    expires = jst(2025, 1, 10, 10)
    add_user(conn, 1, expires, email="old-address@docomo.ne.jp")
    lapse_as_undeliverable(conn, 1, expires)
    assert user_state(conn, 1) == ("lapsed", "undeliverable")

    dag_run = run_dag(
        "net119_manual_resend",
        resend_conf([1], corrected_email="new.address@ezweb.ne.jp"),
    )

    assert dag_run.state == "success"
    # Exactly one mail, to the corrected address.
    assert [mail.recipients for mail in smtp.messages] == [["new.address@ezweb.ne.jp"]]
    [message] = parsed_mails(smtp, "new.address@ezweb.ne.jp")
    body = body_of(message)
    assert "有効期限が過ぎた" in body
    assert "令和7年（2025年）1月10日 10時00分" in body
    assert message["Subject"] == "【NET119】定期更新手続きのお願い"

    # The address change and its audit row.
    with conn.cursor() as cur:
        cur.execute("SELECT email FROM net119.users WHERE id = 1")
        assert cur.fetchone()[0] == "new.address@ezweb.ne.jp"
        cur.execute(
            "SELECT old_email, new_email, changed_by, reason, run_id, changed_at "
            "FROM net119.address_changes WHERE user_id = 1"
        )
        [(old, new, changed_by, reason, run_id, changed_at)] = cur.fetchall()
    assert old == "old-address@docomo.ne.jp"
    assert new == "new.address@ezweb.ne.jp"
    assert changed_by == "dag_test"
    assert reason == REASON
    assert run_id == dag_run.run_id
    assert changed_at is not None

    # The history row: manual, no offset, who and why, this cycle.
    [row] = manual_history(conn, 1)
    assert row["kind"] == "manual"
    assert row["offset_days"] is None
    assert row["outcome"] == "sent"
    assert row["recipient"] == "new.address@ezweb.ne.jp"
    assert row["requested_by"] == "dag_test"
    assert row["request_reason"] == REASON
    assert row["cycle_expires_at"] == expires
    assert message["Message-ID"] == row["message_id"]

    # The link in the mail is a fresh token of this reminder.
    token = re.search(r"/net119/renew/(\S+)", body).group(1)
    with conn.cursor() as cur:
        cur.execute(
            "SELECT reminder_id FROM net119.renewal_tokens WHERE token_hash = %s",
            (hash_token(token),),
        )
        assert cur.fetchone()[0] == row["id"]
        cur.execute(
            "SELECT verp_token FROM net119.reminders WHERE id = %s", (row["id"],)
        )
        verp_token = cur.fetchone()[0]
    assert smtp.messages[0].envelope_from == f"bounce+{verp_token}@net119.example.jp"

    # The rejected old address no longer decides the lapse reason.
    assert user_state(conn, 1) == ("lapsed", "not_renewed")
    with conn.cursor() as cur:
        cur.execute(
            "SELECT old_reason, new_reason, cause, run_id FROM net119.status_events "
            "WHERE user_id = 1 AND cause = 'address corrected'"
        )
        assert cur.fetchall() == [
            ("undeliverable", "not_renewed", "address corrected", dag_run.run_id)
        ]
        cur.execute("SELECT call_back FROM net119.user_capabilities WHERE user_id = 1")
        assert cur.fetchone()[0] is True

    summary = task_result(dag_run, "resend_reminders")
    assert summary["sent"] == [1]
    assert summary["address_corrected"] == [1]
    assert summary["counts"]["sent"] == 1
    assert "new.address" not in json.dumps(summary)


def test_manual_resend_double_submit_refused(conn, airflow_env) -> None:
    smtp = airflow_env
    add_user(conn, 1, jst(2026, 1, 10))
    add_user(conn, 2, jst(2026, 1, 10))

    first = run_dag("net119_manual_resend", resend_conf([1]))
    second = run_dag("net119_manual_resend", resend_conf([1, 2]))

    assert first.state == "success"
    assert second.state == "success"
    assert sorted(r for mail in smtp.messages for r in mail.recipients) == [
        "user1@docomo.ne.jp",
        "user2@docomo.ne.jp",
    ]
    assert len(manual_history(conn, 1)) == 1
    summary = task_result(second, "resend_reminders")
    assert summary["sent"] == [2]
    [refused] = summary["refused"]
    assert refused["user_id"] == 1
    assert f"by run {first.run_id}" in refused["reason"]
    assert "10-minute window; set force to send again" in refused["reason"]


def test_manual_resend_force_sends_again(conn, airflow_env) -> None:
    smtp = airflow_env
    add_user(conn, 1, jst(2026, 1, 10))

    run_dag("net119_manual_resend", resend_conf([1]))
    forced = run_dag("net119_manual_resend", resend_conf([1], force=True))

    assert forced.state == "success"
    assert len(smtp.messages) == 2
    history = manual_history(conn, 1)
    assert [row["outcome"] for row in history] == ["sent", "sent"]
    assert history[0]["message_id"] != history[1]["message_id"]
    assert task_result(forced, "resend_reminders")["refused"] == []


def test_manual_resend_after_window_sends_again(conn, airflow_env) -> None:
    smtp = airflow_env
    add_user(conn, 1, jst(2026, 1, 10))

    run_dag("net119_manual_resend", resend_conf([1]))
    with conn.cursor() as cur:
        cur.execute(
            "UPDATE net119.reminders "
            "SET claimed_at = claimed_at - interval '11 minutes' WHERE kind = 'manual'"
        )
    conn.commit()
    later = run_dag("net119_manual_resend", resend_conf([1]))

    assert task_result(later, "resend_reminders")["sent"] == [1]
    assert len(smtp.messages) == 2


def test_manual_resend_dry_run_changes_nothing(conn, airflow_env) -> None:
    smtp = airflow_env
    add_user(conn, 1, jst(2025, 1, 10))
    add_user(conn, 2, jst(2025, 1, 10))
    lapse_as_undeliverable(conn, 1, jst(2025, 1, 10))
    run_dag("net119_manual_resend", resend_conf([2]))
    before = snapshot(conn)
    mails_before = len(smtp.messages)

    dag_run = run_dag("net119_manual_resend", resend_conf([1, 2], dry_run=True))
    # DAG.test() deletes the previous run without a logical date: read it first.
    summary = task_result(dag_run, "resend_reminders")
    corrected = run_dag(
        "net119_manual_resend",
        resend_conf([1], corrected_email="new@docomo.ne.jp", dry_run=True),
    )

    assert dag_run.state == "success"
    assert corrected.state == "success"
    assert snapshot(conn) == before
    assert len(smtp.messages) == mails_before
    assert summary["dry_run"] is True
    assert summary["would_send"] == [1]
    assert [item["user_id"] for item in summary["refused"]] == [2]
    assert summary["sent"] == []
    corrected_summary = task_result(corrected, "resend_reminders")
    assert corrected_summary["would_correct_address"] == [1]
    assert corrected_summary["address_corrected"] == []


def test_manual_resend_form_lines_accepted(conn, airflow_env) -> None:
    smtp = airflow_env
    add_user(conn, 1, jst(2026, 1, 10))
    add_user(conn, 2, jst(2026, 1, 10))

    # The form's text box sends one string per line, blank lines included.
    dag_run = run_dag("net119_manual_resend", resend_conf(["1", " 2", ""]))

    assert dag_run.state == "success"
    assert task_result(dag_run, "resend_reminders")["sent"] == [1, 2]
    assert len(smtp.messages) == 2


def test_manual_resend_duplicate_ids_mail_once(conn, airflow_env) -> None:
    smtp = airflow_env
    add_user(conn, 1, jst(2026, 1, 10))

    dag_run = run_dag("net119_manual_resend", resend_conf([1, 1, 1]))

    assert len(smtp.messages) == 1
    summary = task_result(dag_run, "resend_reminders")
    assert summary["requested"] == [1]
    assert summary["duplicates_ignored"] == [1]


def test_manual_resend_rejected_address_undeliverable(conn, airflow_env) -> None:
    smtp = airflow_env
    add_user(conn, 1, jst(2025, 1, 10))
    transitions.apply_expiry_transitions(conn, now=jst(2025, 2, 1))
    smtp.handler.data_replies["blocked@docomo.ne.jp"] = (
        "550 5.7.1 Rejected by recipient settings"
    )

    dag_run = run_dag(
        "net119_manual_resend", resend_conf([1], corrected_email="blocked@docomo.ne.jp")
    )

    assert dag_run.state == "success"
    assert smtp.messages == []
    [row] = manual_history(conn, 1)
    assert row["outcome"] == "undeliverable"
    assert user_state(conn, 1) == ("lapsed", "undeliverable")
    [item] = task_result(dag_run, "resend_reminders")["undeliverable"]
    assert item == {
        "user_id": 1,
        "status_code": "5.7.1",
        "reason": "rejected by the SMTP server (550)",
    }


def test_manual_resend_active_user_before_wording(conn, airflow_env) -> None:
    smtp = airflow_env
    far = dt.datetime.now(dt.UTC) + dt.timedelta(days=200)
    add_user(conn, 1, far)

    run_dag("net119_manual_resend", resend_conf([1]))

    [message] = parsed_mails(smtp, "user1@docomo.ne.jp")
    assert "有効期限が過ぎた" not in body_of(message)
    assert "本日が" not in body_of(message)
    assert user_state(conn, 1) == ("active", None)


def test_manual_resend_cli_rejects_invalid_conf(conn, airflow_metadata_db) -> None:
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(airflow_metadata_db),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    }
    conf = json.dumps({"user_ids": [], "reason": REASON})

    completed = subprocess.run(
        [
            str(Path(sys.executable).parent / "airflow"),
            "dags",
            "test",
            "net119_manual_resend",
            "-c",
            conf,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )

    assert completed.returncode != 0
    output = completed.stdout + completed.stderr
    assert "ParamValidationError" in output
    assert "user_ids" in output


# Recording renewals through the DAG


def test_record_renewal_reactivates_lapsed_user(conn, airflow_env) -> None:
    expires = jst(2025, 1, 10, 10)
    add_user(conn, 1, expires)
    lapse_as_undeliverable(conn, 1, expires)

    dag_run = run_dag(
        "net119_record_renewal", {"user_ids": [1], "renewal_via": "fax", "note": NOTE}
    )

    assert dag_run.state == "success"
    assert user_state(conn, 1) == ("active", None)
    with conn.cursor() as cur:
        cur.execute(
            "SELECT via, recorded_by, note, run_id, old_expires_at, new_expires_at "
            "FROM net119.renewals WHERE user_id = 1"
        )
        [(via, recorded_by, note, run_id, old_expiry, new_expiry)] = cur.fetchall()
        cur.execute(
            "SELECT old_status, new_status, old_reason, new_reason, cause, run_id "
            "FROM net119.status_events WHERE user_id = 1 AND new_status = 'active'"
        )
        events = cur.fetchall()
        cur.execute(
            "SELECT emergency_call, practice_call, call_back, mail_management "
            "FROM net119.user_capabilities WHERE user_id = 1"
        )
        capabilities = cur.fetchone()
    assert via == "fax"
    assert recorded_by == "dag_test"
    assert note == NOTE
    assert run_id == dag_run.run_id
    assert old_expiry == expires
    # One calendar year after the run, since the old validity had ended.
    assert new_expiry > dt.datetime.now(dt.UTC) + dt.timedelta(days=364)
    assert events == [
        ("lapsed", "active", "undeliverable", None, "renewed via fax", dag_run.run_id)
    ]
    assert capabilities == (True, True, True, True)
    summary = task_result(dag_run, "record_renewals")
    assert summary["renewed"] == [1]
    assert summary["reactivated"] == [1]


def test_record_renewal_second_run_refused(conn, airflow_env) -> None:
    add_user(conn, 1, jst(2025, 1, 10))
    conf = {"user_ids": [1], "renewal_via": "phone", "note": NOTE}

    run_dag("net119_record_renewal", conf)
    second = run_dag("net119_record_renewal", conf)
    [refused] = task_result(second, "record_renewals")["refused"]
    forced = run_dag("net119_record_renewal", {**conf, "force": True})

    assert refused["user_id"] == 1
    assert "no renewal is due" in refused["reason"]
    assert task_result(forced, "record_renewals")["renewed"] == [1]
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM net119.renewals WHERE user_id = 1")
        assert cur.fetchone()[0] == 2


@pytest.mark.parametrize(
    ("conf", "message"),
    [
        pytest.param(
            {"user_ids": [1, 9], "renewal_via": "fax", "note": NOTE},
            "has no user with id 9",
            id="unknown-id",
        ),
        pytest.param(
            {"user_ids": [1], "renewal_via": "fax", "note": "      "},
            "note (確認の内容) is missing",
            id="blank-note",
        ),
    ],
)
def test_record_renewal_validation_changes_nothing(
    conn, airflow_env, capfd, conf, message
) -> None:
    add_user(conn, 1, jst(2025, 1, 10))
    before = snapshot(conn)

    dag_run = run_dag("net119_record_renewal", conf)

    assert dag_run.state == "failed"
    assert task_states(dag_run)["record_renewals"] == "upstream_failed"
    assert snapshot(conn) == before
    output = capfd.readouterr()
    assert message in output.out + output.err


def test_record_renewal_param_rejects_other_channel(conn, airflow_env) -> None:
    from airflow.sdk.exceptions import ParamValidationError

    add_user(conn, 1, jst(2025, 1, 10))

    with pytest.raises(ParamValidationError):
        run_dag(
            "net119_record_renewal",
            {"user_ids": [1], "renewal_via": "link", "note": NOTE},
        )


# The domain code without Airflow


NOW = dt.datetime(2026, 12, 4, 10, 0, tzinfo=dt.UTC)


@pytest.fixture
def domain_conn(db):
    add_station(db)
    return db


def smtp_sessions(server):
    """Return a session factory for ``resend.resend`` that connects to ``server``."""

    @contextmanager
    def open_session():
        client = smtplib.SMTP(server.host, server.port, timeout=10)
        try:
            yield client
        finally:
            client.quit()

    return open_session


def run_resend(conn, server, request, run_id: str = "manual__run-1"):
    return resend.resend(
        conn,
        smtp_sessions(server),
        request,
        now=NOW,
        run_date=NOW.date(),
        run_id=run_id,
        requested_by="staff-1",
        settings=Settings.from_env(),
    )


def request_for(*user_ids: int, **fields) -> resend.ResendRequest:
    return resend.ResendRequest(user_ids=user_ids, reason=REASON, **fields)


VALIDATION_CASES = [
    pytest.param(
        {"user_ids": None}, "user_ids (利用者ID) must be a list", id="no-list"
    ),
    pytest.param({"user_ids": "1024"}, "got '1024'", id="text-not-list"),
    pytest.param({"user_ids": []}, "an empty list never means every user", id="empty"),
    pytest.param(
        {"user_ids": [1, "x", 2.5, True, 0]},
        "not user ids: a text of 1 characters, 2.5, True, 0",
        id="not-integers",
    ),
    pytest.param({"user_ids": [1, 7, 9]}, "has no user with id 7, 9", id="unknown"),
    pytest.param(
        {"user_ids": ["12a", "taro@docomo.ne.jp"]},
        "not user ids: '12a', a text of 17 characters",
        id="text-not-ids",
    ),
    pytest.param({"user_ids": ["", " "]}, "is empty", id="blank-lines"),
    pytest.param(
        {"user_ids": ["1" * 5000]},
        "not user ids: '11111111111111111111…' (5000 digits, at most 19)",
        id="id-too-long",
    ),
    pytest.param(
        {"user_ids": ["9223372036854775808"]},
        "not user ids: 9223372036854775808",
        id="id-above-bigint",
    ),
    pytest.param(
        {"user_ids": [10**5000]},
        "not user ids: a whole number of 16610 bits",
        id="int-too-large",
    ),
    pytest.param(
        {"user_ids": list(range(1, 1002))},
        "lists 1001 users; the maximum per run is 1000",
        id="too-many",
    ),
    pytest.param(
        {"user_ids": [1, 2], "corrected_email": "new@docomo.ne.jp"},
        "given for 2 users",
        id="corrected-several",
    ),
    pytest.param(
        {"user_ids": [1], "corrected_email": "taro yamada@docomo.ne.jp"},
        "t***@docomo.ne.jp is invalid: space or control character in address",
        id="corrected-malformed",
    ),
    pytest.param(
        {"user_ids": [1], "reason": None},
        "reason (再送信の理由) is missing",
        id="reason-missing",
    ),
    pytest.param(
        {"user_ids": [1], "reason": "  ab  "},
        "shorter than 5 characters",
        id="reason-short",
    ),
    pytest.param(
        {"user_ids": [1], "reason": "\u200b\u200c\u200d\u2060\ufeff\u200b \u200b"},
        "reason (再送信の理由) is missing or shorter than 5 characters",
        id="reason-zero-width",
    ),
    pytest.param(
        {"user_ids": [1], "force": "true"},
        "force must be true or false",
        id="force-text",
    ),
]


@pytest.mark.parametrize(("fields", "message"), VALIDATION_CASES)
def test_validate_request_names_bad_value(domain_conn, fields, message) -> None:
    add_user(domain_conn, 1, jst(2026, 1, 10))
    add_user(domain_conn, 2, jst(2026, 1, 10))
    params = {"reason": REASON, **fields}

    with pytest.raises(RequestValidationError) as raised:
        resend.validate_request(domain_conn, params)

    assert message in str(raised.value)
    assert str(raised.value).startswith(
        "invalid request, nothing was changed or sent: "
    )
    assert "taro yamada" not in str(raised.value)


def test_validate_request_long_id_truncated(domain_conn) -> None:
    with pytest.raises(RequestValidationError) as raised:
        resend.validate_request(
            domain_conn, {"user_ids": ["1" * 5000], "reason": REASON}
        )

    assert "1" * (20 + 1) not in str(raised.value)
    assert len(str(raised.value)) < 300


def test_validate_request_strips_zero_width(domain_conn) -> None:
    add_user(domain_conn, 1, jst(2026, 1, 10))

    request = resend.validate_request(
        domain_conn, {"user_ids": [1], "reason": "\ufeff 住所変更のため\u200b "}
    )

    assert request.reason == "住所変更のため"


def test_validate_request_lists_every_problem(domain_conn) -> None:
    add_user(domain_conn, 1, jst(2026, 1, 10))

    with pytest.raises(RequestValidationError) as raised:
        resend.validate_request(
            domain_conn, {"user_ids": [1, 5, 6], "corrected_email": "x@y.jp"}
        )

    assert len(raised.value.problems) == 3
    assert "given for 3 users" in raised.value.problems[0]
    assert "reason (再送信の理由) is missing" in raised.value.problems[1]
    assert "has no user with id 5, 6" in raised.value.problems[2]


@pytest.mark.parametrize("address", ["taro..yamada.@docomo.ne.jp", "a.@ezweb.ne.jp"])
def test_validate_request_accepts_pre2009_address(domain_conn, address) -> None:
    add_user(domain_conn, 1, jst(2026, 1, 10))

    request = resend.validate_request(
        domain_conn,
        {"user_ids": [1], "reason": REASON, "corrected_email": f" {address} "},
    )

    assert request.corrected_email == address
    assert address not in repr(request)


def test_validate_request_reads_form_lines(domain_conn) -> None:
    for user_id in (1, 2, 3):
        add_user(domain_conn, user_id, jst(2026, 1, 10))

    request = resend.validate_request(
        domain_conn,
        {"user_ids": ["１, 2", " 3 ", "", "1、2"], "reason": REASON},
    )

    assert request.user_ids == (1, 2, 3)
    assert request.duplicate_ids == (1, 2)


def test_validate_request_collapses_duplicates(domain_conn) -> None:
    add_user(domain_conn, 1, jst(2026, 1, 10))
    add_user(domain_conn, 2, jst(2026, 1, 10))

    request = resend.validate_request(
        domain_conn, {"user_ids": [2, 1, 2, 2], "reason": REASON}
    )

    assert request.user_ids == (2, 1)
    assert request.duplicate_ids == (2,)
    assert request.force is False
    assert request.dry_run is False


def test_resend_retry_sends_nothing_twice(domain_conn, smtp_server) -> None:
    add_user(domain_conn, 1, jst(2026, 1, 10))

    first = run_resend(domain_conn, smtp_server, request_for(1))
    retry = run_resend(domain_conn, smtp_server, request_for(1, force=True))

    assert first.sent == [1]
    assert retry.sent == []
    assert retry.already_handled == [{"user_id": 1, "outcome": "sent"}]
    assert len(smtp_server.messages) == 1
    assert len(manual_history(domain_conn, 1)) == 1


def test_resend_retry_resends_temporary_failure(domain_conn, smtp_server) -> None:
    add_user(domain_conn, 1, jst(2026, 1, 10))
    add_user(domain_conn, 2, jst(2026, 1, 10))
    smtp_server.handler.rcpt_replies["user1@docomo.ne.jp"] = "451 4.7.1 Try again later"

    first = run_resend(domain_conn, smtp_server, request_for(1, 2))
    [failed_row] = manual_history(domain_conn, 1)
    del smtp_server.handler.rcpt_replies["user1@docomo.ne.jp"]
    retry = run_resend(domain_conn, smtp_server, request_for(1, 2))

    assert first.sent == [2]
    assert first.failed == [
        {"user_id": 1, "reason": "temporary SMTP failure (451)", "retryable": True}
    ]
    with pytest.raises(resend.TemporarySendFailure, match="user ids 1"):
        first.raise_for_temporary_failures()
    assert retry.sent == [1]
    assert retry.already_handled == [{"user_id": 2, "outcome": "sent"}]
    retry.raise_for_temporary_failures()
    assert sorted(r for mail in smtp_server.messages for r in mail.recipients) == [
        "user1@docomo.ne.jp",
        "user2@docomo.ne.jp",
    ]
    [sent_row] = manual_history(domain_conn, 1)
    assert sent_row["outcome"] == "sent"
    assert sent_row["message_id"] == failed_row["message_id"]
    with domain_conn.cursor() as cur:
        cur.execute(
            "SELECT attempts FROM net119.reminders WHERE id = %s", (sent_row["id"],)
        )
        assert cur.fetchone()[0] == 2


def test_resend_failed_run_not_blocking(domain_conn, smtp_server) -> None:
    add_user(domain_conn, 1, jst(2026, 1, 10))
    add_user(domain_conn, 2, jst(2026, 1, 10))
    smtp_server.handler.rcpt_replies["user1@docomo.ne.jp"] = "451 4.7.1 Try again later"

    first = run_resend(domain_conn, smtp_server, request_for(1, 2))
    del smtp_server.handler.rcpt_replies["user1@docomo.ne.jp"]
    second = run_resend(
        domain_conn, smtp_server, request_for(1, 2), run_id="manual__run-2"
    )

    assert first.sent == [2]
    assert [failure["user_id"] for failure in first.failed] == [1]
    # The failed resend of user 1 does not block run-2; the sent one of user 2 does.
    assert second.sent == [1]
    assert [refused["user_id"] for refused in second.refused] == [2]
    assert [row["outcome"] for row in manual_history(domain_conn, 1)] == [
        "failed",
        "sent",
    ]
    assert len(manual_history(domain_conn, 2)) == 1


def test_resend_interrupted_send_not_repeated(domain_conn, smtp_server) -> None:
    add_user(domain_conn, 1, jst(2026, 1, 10))
    with domain_conn.cursor() as cur:
        cur.execute(
            """
            INSERT INTO net119.reminders (
                user_id, cycle_expires_at, kind, outcome, recipient, claimed_at, run_id
            )
            SELECT id, expires_at, 'manual', 'sending', email, now(), 'manual__run-1'
            FROM net119.users WHERE id = 1
            """
        )
    domain_conn.commit()

    summary = run_resend(domain_conn, smtp_server, request_for(1))

    assert summary.interrupted == [1]
    assert summary.sent == []
    assert smtp_server.messages == []


def test_resend_invalid_stored_address_refused(domain_conn, smtp_server) -> None:
    add_user(domain_conn, 1, jst(2026, 1, 10), email="no-at-sign.docomo.ne.jp")

    summary = run_resend(domain_conn, smtp_server, request_for(1))
    corrected = run_resend(
        domain_conn,
        smtp_server,
        request_for(1, corrected_email="fixed@docomo.ne.jp"),
        run_id="manual__run-2",
    )

    assert summary.refused == [
        {
            "user_id": 1,
            "reason": "the stored address is invalid "
            "(address must contain exactly one @); resend with corrected_email",
        }
    ]
    assert corrected.sent == [1]
    assert [mail.recipients for mail in smtp_server.messages] == [
        ["fixed@docomo.ne.jp"]
    ]


def test_resend_unchanged_address_not_audited(domain_conn, smtp_server) -> None:
    add_user(domain_conn, 1, jst(2026, 1, 10))

    summary = run_resend(
        domain_conn, smtp_server, request_for(1, corrected_email="user1@docomo.ne.jp")
    )

    assert summary.sent == [1]
    assert summary.address_corrected == []
    with domain_conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM net119.address_changes")
        assert cur.fetchone()[0] == 0


def wait_for_lock_wait(conn, timeout: float = 10.0) -> None:
    """Wait until another session of this database waits for a row lock."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            waiting = cur.fetchone()[0]
        conn.rollback()
        if waiting:
            return
        time.sleep(0.05)
    raise AssertionError(f"no session waited for a lock within {timeout} s")


def test_resend_waits_for_concurrent_claim(domain_conn, db_url, smtp_server) -> None:
    add_user(domain_conn, 1, jst(2026, 1, 10))
    # The first run holds the user's row lock between its decision and its commit.
    first_run = net119_db.connect(db_url)
    with first_run.cursor() as cur:
        cur.execute("SELECT id FROM net119.users WHERE id = 1 FOR UPDATE")
    outcome = {}

    def second_run() -> None:
        conn = net119_db.connect(db_url)
        try:
            outcome["summary"] = run_resend(
                conn, smtp_server, request_for(1), run_id="manual__run-2"
            )
        finally:
            conn.close()

    thread = threading.Thread(target=second_run)
    thread.start()
    wait_for_lock_wait(domain_conn)
    with first_run.cursor() as cur:
        cur.execute(
            """
            INSERT INTO net119.reminders (
                user_id, cycle_expires_at, kind, outcome, recipient, claimed_at, run_id
            )
            SELECT id, expires_at, 'manual', 'sending', email, now(), 'manual__run-1'
            FROM net119.users WHERE id = 1
            """
        )
    first_run.commit()
    thread.join(timeout=30)
    first_run.close()

    assert not thread.is_alive()
    summary = outcome["summary"]
    assert [item["user_id"] for item in summary.refused] == [1]
    assert "by run manual__run-1" in summary.refused[0]["reason"]
    assert smtp_server.messages == []


def test_resend_parallel_runs_mail_once(domain_conn, db_url, smtp_server) -> None:
    add_user(domain_conn, 1, jst(2026, 1, 10))
    summaries = []
    start = threading.Barrier(2)

    def run(run_id: str) -> None:
        conn = net119_db.connect(db_url)
        try:
            start.wait()
            summaries.append(
                run_resend(conn, smtp_server, request_for(1), run_id=run_id)
            )
        finally:
            conn.close()

    threads = [threading.Thread(target=run, args=(f"manual__run-{n}",)) for n in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert len(summaries) == 2
    assert sorted(len(summary.sent) for summary in summaries) == [0, 1]
    assert sorted(len(summary.refused) for summary in summaries) == [0, 1]
    assert len(smtp_server.messages) == 1


def test_requester_name_from_dag_run() -> None:
    from types import SimpleNamespace

    assert (
        requester_name(SimpleNamespace(triggering_user_name=" staff-1 ")) == "staff-1"
    )
    assert (
        requester_name(SimpleNamespace(triggering_user_name=None, run_type="manual"))
        == "unknown (manual run without a triggering user)"
    )
    assert requester_name(None) == "unknown (unknown run without a triggering user)"


def test_window_minutes_from_env() -> None:
    assert resend.window_minutes_from_env(lambda name: None) == 10
    assert resend.window_minutes_from_env(lambda name: "30") == 30
    with pytest.raises(ValueError, match="NET119_RESEND_WINDOW_MINUTES='0'"):
        resend.window_minutes_from_env(lambda name: "0")
    with pytest.raises(ValueError, match="expected a whole number of minutes"):
        resend.window_minutes_from_env(lambda name: "ten")


def test_record_renewals_retry_not_repeated(domain_conn) -> None:
    add_user(domain_conn, 1, jst(2025, 1, 10))
    request = recorded_renewal.RenewalRequest(user_ids=(1,), via="post", note=NOTE)

    first = recorded_renewal.record_renewals(
        domain_conn, request, now=NOW, run_id="manual__run-1", recorded_by="staff-1"
    )
    retry = recorded_renewal.record_renewals(
        domain_conn,
        recorded_renewal.RenewalRequest(
            user_ids=(1,), via="post", note=NOTE, force=True
        ),
        now=NOW,
        run_id="manual__run-1",
        recorded_by="staff-1",
    )

    assert first.renewed == [1]
    assert retry.renewed == []
    assert retry.already_recorded == [1]
    with domain_conn.cursor() as cur:
        cur.execute("SELECT new_expires_at FROM net119.renewals WHERE user_id = 1")
        assert cur.fetchall() == [(dt.datetime(2027, 12, 4, 10, 0, tzinfo=dt.UTC),)]


def test_record_renewals_dry_run_changes_nothing(domain_conn) -> None:
    add_user(domain_conn, 1, jst(2025, 1, 10))
    add_user(domain_conn, 2, jst(2027, 11, 1))
    before = snapshot(domain_conn)

    summary = recorded_renewal.record_renewals(
        domain_conn,
        recorded_renewal.RenewalRequest(
            user_ids=(1, 2), via="phone", note=NOTE, dry_run=True
        ),
        now=NOW,
        run_id="manual__run-1",
        recorded_by="staff-1",
    )

    assert snapshot(domain_conn) == before
    assert summary.would_renew == [1]
    assert summary.renewed == []
    [refused] = summary.refused
    assert refused["user_id"] == 2
    assert "validity ends on 2027-11-01" in refused["reason"]
    assert "would extend it to 2028-11-01" in refused["reason"]


def test_resend_error_releases_claim_for_retry(domain_conn, smtp_server) -> None:
    add_user(domain_conn, 1, jst(2026, 1, 10))

    @contextmanager
    def broken_session():
        raise RuntimeError("session factory failed")
        yield  # pragma: no cover

    with pytest.raises(RuntimeError, match="session factory failed"):
        resend.resend(
            domain_conn,
            broken_session,
            request_for(1),
            now=NOW,
            run_date=NOW.date(),
            run_id="manual__run-1",
            requested_by="staff-1",
            settings=Settings.from_env(),
        )
    [failed_row] = manual_history(domain_conn, 1)
    retry = run_resend(domain_conn, smtp_server, request_for(1))

    assert failed_row["outcome"] == "failed"
    assert retry.sent == [1]
    [sent_row] = manual_history(domain_conn, 1)
    assert sent_row["message_id"] == failed_row["message_id"]
    assert len(smtp_server.messages) == 1
