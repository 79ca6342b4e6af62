"""End-to-end runs of net119_daily_reminders with dag.test() on real servers."""

from __future__ import annotations

import datetime as dt
import email
from email import policy

import pytest

from factories import add_station, add_user, history, jst, user_state
from net119 import db as net119_db

UTC = dt.timezone.utc


def run_dag(day: dt.date) -> None:
    """Run the DAG for Asia/Tokyo date ``day`` at its scheduled 09:00 JST."""
    from airflow.dag_processing.dagbag import DagBag

    dagbag = DagBag(dag_folder="dags/net119_daily_reminders.py")
    dag = dagbag.get_dag("net119_daily_reminders")
    logical = dt.datetime.combine(day, dt.time(0, 0), tzinfo=UTC)
    dag_run = dag.test(logical_date=logical)
    assert dag_run.state == "success", f"run for {day} ended {dag_run.state}"


@pytest.fixture
def conn(airflow_env, db_url, monkeypatch):
    # These tests count reminder mails; station reports are tested on their own.
    monkeypatch.setenv("NET119_REPORT_CADENCE", "off")
    connection = net119_db.connect(db_url)
    add_station(connection)
    yield connection
    connection.close()


def bodies_for(smtp, recipient: str) -> list[str]:
    found = []
    for mail in smtp.messages:
        if recipient in mail.recipients:
            parsed = email.message_from_bytes(mail.data, policy=policy.default)
            found.append(parsed.get_body(("plain",)).get_content())
    return found


def test_daily_run_sends_right_step(conn, airflow_env) -> None:
    smtp = airflow_env
    # Step 60日前 is due on 4 December for an expiry on 2 February.
    add_user(conn, 1, jst(2027, 2, 2, 10))
    # 当日 for an expiry on the run date itself.
    add_user(conn, 2, jst(2026, 12, 4, 18))
    # Expiring in 200 days: nothing is due yet.
    add_user(conn, 3, jst(2027, 6, 22, 10))
    # Pre-2009 carrier address, 30日後.
    add_user(conn, 4, jst(2026, 11, 4, 8), email="taro..yamada.@docomo.ne.jp")

    run_dag(dt.date(2026, 12, 4))

    assert history(conn, 1) == [(-90, "skipped"), (-60, "sent")]
    assert history(conn, 2)[-1] == (0, "sent")
    assert history(conn, 3) == []
    assert history(conn, 4)[-1] == (30, "sent")
    assert sorted(r for m in smtp.messages for r in m.recipients) == sorted(
        ["user1@docomo.ne.jp", "user2@docomo.ne.jp", "taro..yamada.@docomo.ne.jp"]
    )


def test_mail_headers_and_verp(conn, airflow_env) -> None:
    smtp = airflow_env
    add_user(conn, 1, jst(2027, 2, 2, 10))

    run_dag(dt.date(2026, 12, 4))

    [mail] = smtp.messages
    parsed = email.message_from_bytes(mail.data, policy=policy.default)
    with conn.cursor() as cur:
        cur.execute("SELECT message_id, verp_token FROM net119.reminders WHERE outcome = 'sent'")
        message_id, token = cur.fetchone()
    assert parsed["Subject"] == "【NET119】定期更新手続きのお願い"
    assert parsed["Message-ID"] == message_id
    assert parsed["Auto-Submitted"] == "auto-generated"
    assert mail.envelope_from == f"bounce+{token}@net119.example.jp"
    assert len(mail.envelope_from.split("@")[0]) < 64


def test_second_run_same_date_sends_nothing(conn, airflow_env) -> None:
    smtp = airflow_env
    add_user(conn, 1, jst(2027, 2, 2, 10))
    add_user(conn, 2, jst(2026, 12, 4, 18))

    run_dag(dt.date(2026, 12, 4))
    first = len(smtp.messages)
    run_dag(dt.date(2026, 12, 4))

    assert first == 2
    assert len(smtp.messages) == first
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM net119.status_events")
        assert cur.fetchone()[0] == 0


def test_consecutive_dates_send_each_step_once(conn, airflow_env) -> None:
    smtp = airflow_env
    # -20 falls on 4 Dec, -10 on 14 Dec.
    add_user(conn, 1, jst(2026, 12, 24, 10))

    for day in range(4, 16):
        run_dag(dt.date(2026, 12, day))

    assert history(conn, 1) == [
        (-90, "skipped"), (-60, "skipped"), (-45, "skipped"), (-30, "skipped"),
        (-20, "sent"), (-10, "sent"),
    ]
    assert len(smtp.messages) == 2


def test_outage_sends_only_latest_step(conn, airflow_env) -> None:
    smtp = airflow_env
    # Steps for an expiry on 31 Dec: -60 on 1 Nov, -45 on 16 Nov, -30 on 1 Dec,
    # -20 on 11 Dec.
    add_user(conn, 1, jst(2026, 12, 31, 10))
    run_dag(dt.date(2026, 11, 1))
    assert history(conn, 1) == [(-90, "skipped"), (-60, "sent")]

    # Down from 2 Nov to 11 Dec; back on 12 Dec.
    run_dag(dt.date(2026, 12, 12))

    assert history(conn, 1) == [
        (-90, "skipped"), (-60, "sent"), (-45, "skipped"), (-30, "skipped"), (-20, "sent"),
    ]
    assert len(smtp.messages) == 2


def test_three_day_outage_sends_late_step_once(conn, airflow_env) -> None:
    smtp = airflow_env
    # -20 falls on 11 Dec, inside an outage from 9 to 11 Dec.
    add_user(conn, 1, jst(2026, 12, 31, 10))
    run_dag(dt.date(2026, 12, 8))
    sent_before = len(smtp.messages)

    run_dag(dt.date(2026, 12, 12))
    run_dag(dt.date(2026, 12, 13))

    assert history(conn, 1)[-1] == (-20, "sent")
    assert len(smtp.messages) == sent_before + 1


def test_nothing_after_last_step(conn, airflow_env) -> None:
    smtp = airflow_env
    expires = jst(2026, 6, 1, 10)
    add_user(conn, 1, expires)

    run_dag(dt.date(2026, 11, 28))  # +180 is due
    run_dag(dt.date(2026, 12, 20))  # still within its 30 days, already sent
    run_dag(dt.date(2027, 1, 5))    # past the 30 days

    assert history(conn, 1)[-1] == (180, "sent")
    assert len(smtp.messages) == 1


def test_lapsed_user_gets_after_wording(conn, airflow_env) -> None:
    smtp = airflow_env
    add_user(conn, 1, jst(2026, 11, 4, 8))

    run_dag(dt.date(2026, 12, 4))

    assert user_state(conn, 1) == ("lapsed", "not_renewed")
    [body] = bodies_for(smtp, "user1@docomo.ne.jp")
    assert "失効中" in body
    assert "有効期限が過ぎた" in body
    assert "緊急通報と練習通報はこれまでどおり使えます" in body


def test_before_and_due_wording_differ(conn, airflow_env) -> None:
    smtp = airflow_env
    add_user(conn, 1, jst(2027, 2, 2, 10))
    add_user(conn, 2, jst(2026, 12, 4, 18))

    run_dag(dt.date(2026, 12, 4))

    [before] = bodies_for(smtp, "user1@docomo.ne.jp")
    [due] = bodies_for(smtp, "user2@docomo.ne.jp")
    assert "令和9年（2027年）2月2日 10時00分" in before
    assert "本日が、あなたのNET119の有効期限です" in due
    assert "本日が" not in before


def test_send_time_rejections_recorded(conn, airflow_env) -> None:
    smtp = airflow_env
    for user_id in range(1, 6):
        add_user(conn, user_id, jst(2027, 2, 2, 10))
    smtp.handler.rcpt_replies["user2@docomo.ne.jp"] = "451 4.7.1 Try again later"
    smtp.handler.data_replies["user4@docomo.ne.jp"] = "550 5.1.1 User unknown"

    run_dag(dt.date(2026, 12, 4))

    outcomes = {uid: history(conn, uid)[-1][1] for uid in range(1, 6)}
    assert outcomes == {1: "sent", 2: "failed", 3: "sent", 4: "undeliverable", 5: "sent"}
    # The temporary failure is retried the next day, while -60 is still due.
    del smtp.handler.rcpt_replies["user2@docomo.ne.jp"]
    run_dag(dt.date(2026, 12, 5))
    assert history(conn, 2)[-1] == (-60, "sent")
    assert sum("user4@docomo.ne.jp" in m.recipients for m in smtp.messages) == 0


def test_rejected_user_lapses_as_undeliverable(conn, airflow_env) -> None:
    smtp = airflow_env
    add_user(conn, 1, jst(2026, 12, 4, 18))
    add_user(conn, 2, jst(2026, 12, 4, 18))
    smtp.handler.rcpt_replies["user1@docomo.ne.jp"] = "550 5.7.1 Rejected by recipient settings"

    run_dag(dt.date(2026, 12, 4))
    run_dag(dt.date(2026, 12, 5))

    assert user_state(conn, 1) == ("lapsed", "undeliverable")
    assert user_state(conn, 2) == ("lapsed", "not_renewed")
    with conn.cursor() as cur:
        cur.execute(
            "SELECT call_back, mail_management, emergency_call, practice_call "
            "FROM net119.user_capabilities WHERE user_id = 1"
        )
        assert cur.fetchone() == (False, False, True, True)
        cur.execute(
            "SELECT old_status, new_status, new_reason, run_id IS NOT NULL "
            "FROM net119.status_events WHERE user_id = 1"
        )
        assert cur.fetchall() == [("active", "lapsed", "undeliverable", True)]


def test_invalid_address_fails_alone(conn, airflow_env) -> None:
    smtp = airflow_env
    add_user(conn, 1, jst(2027, 2, 2, 10), email="no-at-sign.docomo.ne.jp")
    add_user(conn, 2, jst(2027, 2, 2, 10))

    run_dag(dt.date(2026, 12, 4))

    assert history(conn, 1)[-1] == (-60, "failed")
    assert history(conn, 2)[-1] == (-60, "sent")
    with conn.cursor() as cur:
        cur.execute("SELECT failure_reason FROM net119.reminders WHERE user_id = 1 AND outcome = 'failed'")
        assert cur.fetchone()[0] == "invalid address: address must contain exactly one @"


def test_unwritable_address_fails_alone(conn, airflow_env) -> None:
    # An empty domain makes the header parser raise while the To header is set.
    add_user(conn, 1, jst(2027, 2, 2, 10), email="broken@")
    add_user(conn, 2, jst(2027, 2, 2, 10))

    run_dag(dt.date(2026, 12, 4))

    assert history(conn, 1)[-1] == (-60, "failed")
    assert history(conn, 2)[-1] == (-60, "sent")


def test_late_due_step_uses_after_wording(conn, airflow_env) -> None:
    smtp = airflow_env
    # 当日 is still the latest due step 3 days after the expiry date.
    add_user(conn, 1, jst(2026, 12, 1, 18))

    run_dag(dt.date(2026, 12, 4))

    assert history(conn, 1)[-1] == (0, "sent")
    [body] = bodies_for(smtp, "user1@docomo.ne.jp")
    assert "有効期限が過ぎた" in body
    assert "本日が" not in body


def test_invalid_address_lapses_as_undeliverable(conn, airflow_env) -> None:
    add_user(conn, 1, jst(2026, 11, 4, 8), email="no-at-sign.docomo.ne.jp")
    add_user(conn, 2, jst(2026, 11, 4, 8))

    run_dag(dt.date(2026, 12, 4))

    assert user_state(conn, 1) == ("lapsed", "undeliverable")
    assert user_state(conn, 2) == ("lapsed", "not_renewed")
