"""Station reports on a real PostgreSQL and a real SMTP server (aiosmtpd)."""

from __future__ import annotations

import codecs
import datetime as dt
import smtplib
from contextlib import contextmanager

import pytest
from factories import add_station, add_user, jst
from net119 import transitions
from net119.config import Settings
from net119.reports import service
from net119.reports.config import ReportSettings
from net119.reports.csvfile import HEADERS
from report_helpers import (
    add_reminder,
    attachments,
    bounce,
    csv_attachment,
    parse,
    read_csv,
    report_time,
    reports_to,
    session_factory,
    set_station,
    set_user,
)

# Friday 4 December 2026, in ISO week 2026-W49 (30 Nov to 6 Dec).
RUN_DATE = dt.date(2026, 12, 4)
NOW = report_time(RUN_DATE)
YOKOHAMA = "report@yokohama.example.jp"
KAWASAKI = "report@kawasaki.example.jp"


def send(
    conn,
    smtp,
    station_ids,
    *,
    run_date=RUN_DATE,
    now=None,
    run_id="run-1",
    report_settings=None,
):
    return service.send_station_reports(
        conn,
        session_factory(smtp),
        station_ids=station_ids,
        run_date=run_date,
        now=now or report_time(run_date),
        settings=Settings.from_env(),
        report_settings=report_settings or ReportSettings(),
        run_id=run_id,
    )


@pytest.fixture
def stations(db):
    add_station(db, "st-yokohama", "横浜市消防局", (YOKOHAMA,))
    add_station(db, "st-kawasaki", "川崎市消防局", (KAWASAKI,))
    set_station(
        db,
        "st-yokohama",
        contact_phone="045-334-6780",
        contact_fax="045-334-6790",
        contact_email="net119@yokohama.example.jp",
        postal_address="神奈川県横浜市保土ケ谷区川辺町2-9",
    )
    return db


@pytest.fixture
def population(stations):
    """Users of st-yokohama in every situation a report distinguishes, and one of st-kawasaki."""
    conn = stations
    # 1: lapsed 不達; its last reminder bounced as user unknown.
    add_user(conn, 1, jst(2026, 11, 4, 8), name="山田 太郎")
    set_user(
        conn,
        1,
        phone="090-1111-2222",
        fax="045-111-2222",
        postal_code="231-0023",
        postal_address="神奈川県横浜市中区山下町1-2-3",
    )
    bounce(
        conn,
        1,
        jst(2026, 11, 4, 9, 5),
        diagnostic="550 5.1.1 <user1@docomo.ne.jp>: User unknown",
    )

    # 2: lapsed 未更新; its last reminder was accepted.
    add_user(conn, 2, jst(2026, 11, 20, 18), name="佐藤 花子")
    add_reminder(conn, 2, outcome="sent", sent_at=jst(2026, 11, 20, 9, 1))

    # 3: active, expires in 16 days, its latest reminder was filtered: at risk.
    add_user(
        conn, 3, jst(2026, 12, 20, 10), name="鈴木 一郎", email="suzuki@ezweb.ne.jp"
    )
    add_reminder(conn, 3, outcome="sent", sent_at=jst(2026, 11, 20, 9), offset_days=-30)
    bounce(
        conn,
        3,
        jst(2026, 11, 30, 9),
        offset_days=-20,
        status_code="5.7.1",
        category="filtered",
        diagnostic="550 5.7.1 Rejected by recipient settings",
    )

    # 4: active, expires in 16 days, latest reminder accepted: not at risk.
    add_user(conn, 4, jst(2026, 12, 20, 10))
    add_reminder(conn, 4, outcome="sent", sent_at=jst(2026, 11, 30, 9), offset_days=-20)

    # 5: active, bounced, but expires in 59 days: not at risk yet.
    add_user(conn, 5, jst(2027, 2, 1, 10))
    bounce(conn, 5, jst(2026, 12, 3, 9), offset_days=-60)

    # 6: lapsed user of another station.
    add_user(conn, 6, jst(2026, 11, 1, 10), station_id="st-kawasaki", name="川崎 次郎")

    # 7: lapsed 不達, then a manual resend to an invalid address failed.
    add_user(conn, 7, jst(2026, 11, 10, 10), name="-髙橋 =SUM(A1)")
    bounce(
        conn,
        7,
        jst(2026, 11, 10, 9),
        status_code="5.2.2",
        category="mailbox_full",
        diagnostic="552 5.2.2 Mailbox full",
    )
    add_reminder(
        conn,
        7,
        outcome="failed",
        sent_at=None,
        kind="manual",
        recipient="no-at-sign.docomo.ne.jp",
        failure_reason="invalid address: address must contain exactly one @",
    )

    transitions.apply_expiry_transitions(conn, now=NOW, run_id="run-0")
    return conn


def test_report_csv_utf8_columns_and_rows(population, smtp_server) -> None:
    counts = send(population, smtp_server, ["st-yokohama", "st-kawasaki"])

    assert counts.reported == 2
    [message] = reports_to(smtp_server, YOKOHAMA)
    name, data = csv_attachment(message)
    assert name == "失効中利用者_横浜市消防局_2026-12-04.csv"
    assert data.startswith(codecs.BOM_UTF8)
    assert b"\r\n" in data
    rows = read_csv(data, "utf-8-sig")
    assert list(rows[0].keys()) == list(HEADERS)
    by_id = {row["利用者ID"]: row for row in rows}
    assert sorted(by_id) == ["1", "2", "3", "7"]

    assert by_id["1"] == {
        "区分": "失効中",
        "新規": "新規",
        "利用者ID": "1",
        "氏名": "山田 太郎",
        "利用状況": "失効中",
        "失効理由": "不達",
        "有効期限日時": "2026-11-04T08:00:00+09:00",
        "失効日時": "2026-12-04T09:00:00+09:00",
        "電話番号": "090-1111-2222",
        "FAX番号": "045-111-2222",
        "郵便番号": "231-0023",
        "住所": "神奈川県横浜市中区山下町1-2-3",
        "メールアドレス": "user1@docomo.ne.jp",
        "最終リマインダー日時": "2026-11-04T09:05:00+09:00",
        "最終リマインダー段階": "当日",
        "最終リマインダー結果": "不達",
        "最終リマインダー送信先": "user1@docomo.ne.jp",
        "送信失敗理由": "",
        "不達日時": "2026-11-04T10:05:00+09:00",
        "不達分類": "宛先不明（アドレスが存在しない）",
        "ステータスコード": "5.1.1",
        "診断メッセージ": "550 5.1.1 <user1@docomo.ne.jp>: User unknown",
    }
    assert by_id["2"]["失効理由"] == "未更新"
    assert by_id["2"]["最終リマインダー結果"] == "送信済み"
    assert by_id["2"]["不達分類"] == ""
    assert by_id["2"]["診断メッセージ"] == ""

    assert by_id["3"]["区分"] == "期限間近（不達）"
    assert by_id["3"]["利用状況"] == "利用中"
    assert by_id["3"]["失効理由"] == ""
    assert by_id["3"]["失効日時"] == ""
    assert by_id["3"]["有効期限日時"] == "2026-12-20T10:00:00+09:00"
    assert by_id["3"]["最終リマインダー段階"] == "20日前"
    assert by_id["3"]["不達分類"] == "受信拒否（迷惑メール設定など）"
    assert by_id["3"]["ステータスコード"] == "5.7.1"

    # The last reminder is the failed manual resend; the bounce stays the evidence.
    assert by_id["7"]["氏名"] == "'-髙橋 =SUM(A1)"
    assert by_id["7"]["最終リマインダー段階"] == "手動再送"
    assert by_id["7"]["最終リマインダー結果"] == "送信失敗"
    assert by_id["7"]["最終リマインダー送信先"] == "no-at-sign.docomo.ne.jp"
    assert by_id["7"]["送信失敗理由"] == "メールアドレスの形式が正しくありません"
    assert by_id["7"]["不達分類"] == "メールボックス容量超過"
    assert by_id["7"]["ステータスコード"] == "5.2.2"

    # Lapsed 不達 first, then 未更新, then at risk.
    assert [row["利用者ID"] for row in rows] == ["1", "7", "2", "3"]


def test_report_only_own_station(population, smtp_server) -> None:
    send(population, smtp_server, ["st-yokohama", "st-kawasaki"])

    [kawasaki] = reports_to(smtp_server, KAWASAKI)
    _, data = csv_attachment(kawasaki)
    assert [row["利用者ID"] for row in read_csv(data, "utf-8-sig")] == ["6"]
    [yokohama] = reports_to(smtp_server, YOKOHAMA)
    assert "川崎 次郎" not in yokohama.get_body(("plain",)).get_content()


def test_report_csv_cp932_replaces_outside_characters(population, smtp_server) -> None:
    set_station(population, "st-yokohama", report_csv_encoding="cp932")
    set_user(population, 2, name="𠮷田 花子😀", postal_address="横浜市〜中区―1")
    set_user(population, 1, name="髙橋 太郎")

    counts = send(population, smtp_server, ["st-yokohama"])

    assert counts.reported == 1
    [message] = reports_to(smtp_server, YOKOHAMA)
    name, data = csv_attachment(message)
    part = attachments(message)[name]
    assert part.get_content_type() == "text/csv"
    assert part.get_param("charset") == "Windows-31J"
    assert not data.startswith(codecs.BOM_UTF8)
    rows = {row["利用者ID"]: row for row in read_csv(data, "cp932")}
    # 髙 is an NEC-selected IBM extension character, which CP932 has.
    assert rows["1"]["氏名"] == "髙橋 太郎"
    assert rows["2"]["氏名"] == "〓田 花子〓"
    # WAVE DASH is written as CP932's FULLWIDTH TILDE, which Excel shows as ～.
    assert rows["2"]["住所"] == "横浜市～中区―1"
    assert rows["3"]["氏名"] == "鈴木 一郎"
    html = message.get_body(("html",)).get_content()
    text = message.get_body(("plain",)).get_content()
    assert "CSVファイルで置き換えた文字" in html
    assert "<td>2</td><td>氏名</td><td>𠮷😀</td>" in html
    assert "利用者ID 2　氏名　元の文字：𠮷😀" in text
    with population.cursor() as cur:
        cur.execute(
            "SELECT status, csv_encoding, replaced_cell_count FROM net119.station_reports"
        )
        assert cur.fetchall() == [("sent", "cp932", 1)]


def test_report_utf8_keeps_every_character(population, smtp_server) -> None:
    set_user(population, 2, name="𠮷田 花子😀")

    send(population, smtp_server, ["st-yokohama"])

    [message] = reports_to(smtp_server, YOKOHAMA)
    _, data = csv_attachment(message)
    rows = {row["利用者ID"]: row for row in read_csv(data, "utf-8-sig")}
    assert rows["2"]["氏名"] == "𠮷田 花子😀"
    assert "置き換えた文字" not in message.get_body(("plain",)).get_content()


def test_report_mail_structure(population, smtp_server) -> None:
    send(population, smtp_server, ["st-yokohama"])

    [received] = [m for m in smtp_server.messages if YOKOHAMA in m.recipients]
    [message] = reports_to(smtp_server, YOKOHAMA)
    assert received.envelope_from == "bounce@net119.example.jp"
    assert message.get_content_type() == "multipart/mixed"
    [alternative, *rest] = message.iter_parts()
    assert alternative.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in alternative.iter_parts()] == [
        "text/plain",
        "text/html",
    ]
    assert (
        message["Subject"]
        == "【NET119】失効中利用者の報告（横浜市消防局・令和8年（2026年）12月4日）"
    )
    assert message["Auto-Submitted"] == "auto-generated"
    with population.cursor() as cur:
        cur.execute(
            "SELECT message_id FROM net119.station_reports WHERE station_id = 'st-yokohama'"
        )
        assert message["Message-ID"] == cur.fetchone()[0]
    # Japanese file names go out RFC 2231 encoded.
    assert b"filename*0*=utf-8''%E5%A4%B1%E5%8A%B9%E4%B8%AD" in received.data
    names = sorted(attachments(message))
    assert names == [
        "失効中利用者_横浜市消防局_2026-12-04.csv",
        "案内書_1_山田 太郎.pdf",
        "案内書_3_鈴木 一郎.pdf",
        "案内書_7_-髙橋 =SUM(A1).pdf",
    ]
    for name in names[1:]:
        part = attachments(message)[name]
        assert part.get_content_type() == "application/pdf"
        assert part.get_payload(decode=True).startswith(b"%PDF-")


def test_report_summary_counts_and_actions(population, smtp_server) -> None:
    send(population, smtp_server, ["st-yokohama"])

    [message] = reports_to(smtp_server, YOKOHAMA)
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert "横浜市消防局 ご担当者様" in text
    assert "集計日時：令和8年（2026年）12月4日 9時00分" in text
    assert (
        "報告期間：令和8年（2026年）11月30日〜令和8年（2026年）12月6日（毎週の報告）"
        in text
    )
    assert "前回の報告：なし（今回が最初の報告です）" in text
    assert "失効中　　　　　　3名（うち新規 3名）" in text
    assert "うち不達　　　　2名（うち新規 2名）" in text
    assert "うち未更新　　　1名（うち新規 1名）" in text
    assert "期限間近（不達）　1名（うち新規 1名）" in text
    assert "電話またはFAXで利用者に連絡してください" in text
    assert "「net119.example.jp」からのメールを受け取れるよう" in text
    assert "手動再送" in text
    assert "案内書 3通" in text
    assert (
        "　3　鈴木 一郎　期限間近（不達）　有効期限 令和8年（2026年）12月20日" in text
    )
    # HTML escapes what users typed.
    assert "<td>-髙橋 =SUM(A1)</td>" in html
    assert "<td>3名</td>" not in html
    assert 'style="text-align: right;">3名</td>' in html
    assert "ソフトバンク：受信許可リスト" in html


def test_report_retry_sends_nothing_twice(population, smtp_server) -> None:
    first = send(population, smtp_server, ["st-yokohama", "st-kawasaki"])
    again = send(population, smtp_server, ["st-yokohama", "st-kawasaki"])
    other_run = send(
        population, smtp_server, ["st-yokohama", "st-kawasaki"], run_id="run-2"
    )

    assert first.reported == 2
    assert again.reported == 0
    assert again.skipped_already_sent == 2
    assert other_run.skipped_already_sent == 2
    assert len(smtp_server.messages) == 2
    with population.cursor() as cur:
        cur.execute(
            "SELECT station_id, status, attempts FROM net119.station_reports ORDER BY 1"
        )
        assert cur.fetchall() == [
            ("st-kawasaki", "sent", 1),
            ("st-yokohama", "sent", 1),
        ]


def test_report_interrupted_send_resent_same_message(population, smtp_server) -> None:
    # An attempt of run-1 crashed after claiming: the claim is still 'sending'.
    with population.cursor() as cur:
        cur.execute(
            """
            INSERT INTO net119.station_reports (station_id, cadence, period_key, period_start,
                period_end, status, run_id, attempts, claimed_at, message_id)
            VALUES ('st-yokohama', 'weekly', '2026-W49', '2026-11-30', '2026-12-07',
                    'sending', 'run-1', 1, now(), '<report.crashed@net119.example.jp>')
            """
        )
    population.commit()

    other = send(population, smtp_server, ["st-yokohama"], run_id="run-2")
    assert other.skipped_in_progress == 1
    assert other.skipped_already_sent == 0
    assert smtp_server.messages == []

    retried = send(population, smtp_server, ["st-yokohama"], run_id="run-1")
    assert retried.reported == 1
    [message] = reports_to(smtp_server, YOKOHAMA)
    assert message["Message-ID"] == "<report.crashed@net119.example.jp>"


class _SecondSendBreaks(smtplib.SMTP):
    """A real SMTP client whose second ``sendmail`` raises an unexpected error."""

    sends = 0

    def sendmail(self, *args, **kwargs):
        if self.sends:
            raise RuntimeError("unexpected error after the first report")
        self.sends += 1
        return super().sendmail(*args, **kwargs)


def test_report_error_releases_claims(population, smtp_server) -> None:
    @contextmanager
    def breaking_session():
        client = _SecondSendBreaks(smtp_server.host, smtp_server.port, timeout=10)
        try:
            yield client
        finally:
            client.quit()

    with pytest.raises(RuntimeError, match="unexpected error"):
        service.send_station_reports(
            population,
            breaking_session,
            station_ids=["st-kawasaki", "st-yokohama"],
            run_date=RUN_DATE,
            now=NOW,
            settings=Settings.from_env(),
            report_settings=ReportSettings(),
            run_id="run-1",
        )

    with population.cursor() as cur:
        cur.execute(
            "SELECT station_id, status, failure_reason FROM net119.station_reports "
            "ORDER BY station_id"
        )
        assert cur.fetchall() == [
            ("st-kawasaki", "sent", None),
            ("st-yokohama", "failed", "interrupted by an error: RuntimeError"),
        ]
    assert len(reports_to(smtp_server, KAWASAKI)) == 1
    assert reports_to(smtp_server, YOKOHAMA) == []

    # Another run, within the claim lease, sends the interrupted report.
    retry = send(population, smtp_server, ["st-kawasaki", "st-yokohama"], run_id="run-2")
    assert retry.reported == 1
    assert retry.skipped_already_sent == 1
    assert retry.skipped_in_progress == 0
    assert len(reports_to(smtp_server, YOKOHAMA)) == 1
    assert len(reports_to(smtp_server, KAWASAKI)) == 1


def test_report_station_without_address_reported(population, smtp_server) -> None:
    add_station(population, "st-noaddr", "住所なし消防本部", ())
    add_station(population, "st-badaddr", "不正アドレス消防本部", ("not-an-address",))
    add_user(population, 20, jst(2026, 11, 1, 10), station_id="st-noaddr")
    transitions.apply_expiry_transitions(population, now=NOW)
    batch = ["st-badaddr", "st-kawasaki", "st-noaddr", "st-yokohama"]

    counts = send(population, smtp_server, batch)

    assert counts.reported == 2
    assert counts.without_address == 2
    assert len(reports_to(smtp_server, YOKOHAMA)) == 1
    assert len(reports_to(smtp_server, KAWASAKI)) == 1
    with pytest.raises(service.StationReportError) as raised:
        service.raise_for_problems(
            population,
            batch,
            run_date=RUN_DATE,
            report_settings=ReportSettings(),
            run_id="run-1",
        )
    message = str(raised.value)
    assert "2026-W49" in message
    assert "no valid report address" in message
    assert "st-badaddr, st-noaddr" in message
    assert "st-yokohama" not in message

    # Once the address is set, the next attempt sends that report only.
    set_station(population, "st-noaddr", report_emails=["report@noaddr.example.jp"])
    set_station(population, "st-badaddr", report_emails=["report@badaddr.example.jp"])
    retry = send(population, smtp_server, batch)
    assert retry.reported == 2
    assert retry.skipped_already_sent == 2
    assert len(smtp_server.messages) == 4
    service.raise_for_problems(
        population,
        batch,
        run_date=RUN_DATE,
        report_settings=ReportSettings(),
        run_id="run-1",
    )


def test_report_rejected_then_retried(population, smtp_server) -> None:
    smtp_server.handler.rcpt_replies[YOKOHAMA] = "451 4.3.0 Try again later"

    first = send(population, smtp_server, ["st-kawasaki", "st-yokohama"])

    assert first.reported == 1
    assert first.failed == 1
    with pytest.raises(
        service.StationReportError, match=r"send failed .*: st-yokohama"
    ):
        service.raise_for_problems(
            population,
            ["st-kawasaki", "st-yokohama"],
            run_date=RUN_DATE,
            report_settings=ReportSettings(),
            run_id="run-1",
        )
    del smtp_server.handler.rcpt_replies[YOKOHAMA]
    second = send(population, smtp_server, ["st-kawasaki", "st-yokohama"])
    assert second.reported == 1
    assert second.skipped_already_sent == 1
    assert len(reports_to(smtp_server, YOKOHAMA)) == 1
    assert len(reports_to(smtp_server, KAWASAKI)) == 1


def test_report_partly_refused_addresses(population, smtp_server) -> None:
    other = "chief@yokohama.example.jp"
    set_station(population, "st-yokohama", report_emails=[YOKOHAMA, other])
    smtp_server.handler.rcpt_replies[other] = "550 5.1.1 User unknown"

    counts = send(population, smtp_server, ["st-yokohama"])

    assert counts.reported == 1
    assert len(reports_to(smtp_server, YOKOHAMA)) == 1
    with pytest.raises(
        service.StationReportError, match="some report addresses were invalid or rejected: st-yokohama"
    ):
        service.raise_for_problems(
            population,
            ["st-yokohama"],
            run_date=RUN_DATE,
            report_settings=ReportSettings(),
            run_id="run-1",
        )


def test_report_invalid_extra_address_reported(population, smtp_server) -> None:
    set_station(population, "st-yokohama", report_emails=[YOKOHAMA, "chief@@example.jp"])

    counts = send(population, smtp_server, ["st-yokohama"])

    assert counts.reported == 1
    assert [m.recipients for m in smtp_server.messages] == [[YOKOHAMA]]
    with pytest.raises(
        service.StationReportError, match="some report addresses were invalid or rejected: st-yokohama"
    ):
        service.raise_for_problems(
            population,
            ["st-yokohama"],
            run_date=RUN_DATE,
            report_settings=ReportSettings(),
            run_id="run-1",
        )


def test_report_smtp_down_fails_batch(population, smtp_server) -> None:
    def unreachable():
        import smtplib

        return smtplib.SMTP("127.0.0.1", 1, timeout=2)

    counts = service.send_station_reports(
        population,
        unreachable,
        station_ids=["st-kawasaki", "st-yokohama"],
        run_date=RUN_DATE,
        now=NOW,
        settings=Settings.from_env(),
        report_settings=ReportSettings(),
        run_id="run-1",
    )

    assert counts.failed == 2
    with population.cursor() as cur:
        cur.execute(
            "SELECT status, failure_reason FROM net119.station_reports ORDER BY station_id"
        )
        assert cur.fetchall() == [
            ("failed", "SMTP server unavailable: ConnectionRefusedError"),
            ("failed", "SMTP server unavailable: ConnectionRefusedError"),
        ]


def test_report_at_risk_list(stations, smtp_server) -> None:
    conn = stations
    # Bounced and expiring in 29 days: at risk.
    add_user(conn, 1, jst(2027, 1, 2, 8))
    bounce(conn, 1, jst(2026, 11, 3, 9), offset_days=-60)
    # Bounced and expiring in 31 days: not yet.
    add_user(conn, 2, jst(2027, 1, 4, 10))
    bounce(conn, 2, jst(2026, 11, 5, 9), offset_days=-60)
    # Bounced, then a later reminder went through: no longer at risk.
    add_user(conn, 3, jst(2026, 12, 20, 10))
    bounce(conn, 3, jst(2026, 11, 20, 9), offset_days=-30)
    add_reminder(conn, 3, outcome="sent", sent_at=jst(2026, 11, 30, 9), offset_days=-20)
    # The bounce went to an old address; the user has a new one since.
    add_user(conn, 4, jst(2026, 12, 20, 10))
    bounce(conn, 4, jst(2026, 11, 30, 9), offset_days=-20)
    set_user(conn, 4, email="new4@docomo.ne.jp")
    # Renewed in time: active, expires next year, so not at risk.
    add_user(conn, 5, jst(2027, 12, 10, 10))
    bounce(conn, 5, jst(2026, 11, 30, 9), offset_days=-20)
    # Bounced at send time and expiring tomorrow.
    add_user(conn, 6, jst(2026, 12, 5, 10))
    add_reminder(
        conn,
        6,
        outcome="undeliverable",
        sent_at=jst(2026, 12, 4, 9),
        offset_days=-10,
        status_code="5.7.1",
        diagnostic="550 5.7.1 Rejected by recipient settings",
    )

    send(conn, smtp_server, ["st-yokohama"])

    [message] = reports_to(smtp_server, YOKOHAMA)
    _, data = csv_attachment(message)
    rows = read_csv(data, "utf-8-sig")
    assert [(r["利用者ID"], r["区分"]) for r in rows] == [
        ("1", "期限間近（不達）"),
        ("6", "期限間近（不達）"),
    ]
    assert rows[1]["診断メッセージ"] == "550 5.7.1 Rejected by recipient settings"
    assert rows[1]["最終リマインダー段階"] == "10日前"


def test_report_weekly_cadence(population, smtp_server) -> None:
    # Friday of week 49, then Saturday and Sunday of the same week.
    for day in (4, 5, 6):
        send(
            population,
            smtp_server,
            ["st-yokohama"],
            run_date=dt.date(2026, 12, day),
            run_id=f"run-{day}",
        )
    assert len(reports_to(smtp_server, YOKOHAMA)) == 1

    # Monday of week 50.
    counts = send(
        population,
        smtp_server,
        ["st-yokohama"],
        run_date=dt.date(2026, 12, 7),
        run_id="run-7",
    )
    assert counts.reported == 1
    assert len(reports_to(smtp_server, YOKOHAMA)) == 2
    with population.cursor() as cur:
        cur.execute(
            "SELECT period_key, period_start, period_end FROM net119.station_reports ORDER BY id"
        )
        assert cur.fetchall() == [
            ("2026-W49", dt.date(2026, 11, 30), dt.date(2026, 12, 7)),
            ("2026-W50", dt.date(2026, 12, 7), dt.date(2026, 12, 14)),
        ]


def test_report_weekday_not_due(population, smtp_server) -> None:
    thursday = ReportSettings(weekday=4)

    before = send(
        population,
        smtp_server,
        ["st-yokohama"],
        run_date=dt.date(2026, 12, 2),
        report_settings=thursday,
    )
    batches = service.list_report_batches(
        population, run_date=dt.date(2026, 12, 2), report_settings=thursday
    )
    on_day = send(
        population,
        smtp_server,
        ["st-yokohama"],
        run_date=dt.date(2026, 12, 3),
        report_settings=thursday,
    )

    assert before.skipped_not_due == 1
    assert batches == []
    assert on_day.reported == 1
    assert len(smtp_server.messages) == 1


def test_report_new_since_previous_report(population, smtp_server) -> None:
    send(population, smtp_server, ["st-yokohama"])
    # During the week: user 8 lapses, user 2's reason turns to 不達, user 3 renews.
    add_user(population, 8, jst(2026, 12, 8, 10), name="新井 八郎")
    bounce(population, 2, jst(2026, 12, 5, 9), offset_days=30)
    set_user(population, 3, expires_at=jst(2027, 12, 20, 10))
    transitions.apply_expiry_transitions(
        population, now=report_time(dt.date(2026, 12, 11))
    )

    send(
        population,
        smtp_server,
        ["st-yokohama"],
        run_date=dt.date(2026, 12, 11),
        run_id="run-2",
    )

    first, second = reports_to(smtp_server, YOKOHAMA)
    _, data = csv_attachment(second)
    rows = {r["利用者ID"]: r for r in read_csv(data, "utf-8-sig")}
    assert sorted(rows) == ["1", "2", "7", "8"]
    assert rows["1"]["新規"] == ""
    assert rows["7"]["新規"] == ""
    assert (rows["2"]["失効理由"], rows["2"]["新規"]) == ("不達", "新規")
    assert (rows["8"]["失効理由"], rows["8"]["新規"]) == ("未更新", "新規")
    text = second.get_body(("plain",)).get_content()
    assert "前回の報告：令和8年（2026年）12月4日 9時00分 時点" in text
    assert "■前回の報告以降の新規（2名）" in text
    # Only the new 不達 user gets a letter this time.
    assert [n for n in attachments(second) if n.endswith(".pdf")] == [
        "案内書_2_佐藤 花子.pdf"
    ]
    with population.cursor() as cur:
        cur.execute(
            "SELECT new_lapsed_count, new_at_risk_count, letter_count FROM net119.station_reports"
            " WHERE period_key = '2026-W50'"
        )
        assert cur.fetchone() == (2, 0, 1)


def test_report_letters_capped(population, smtp_server) -> None:
    counts = send(
        population,
        smtp_server,
        ["st-yokohama"],
        report_settings=ReportSettings(max_letters=1),
    )

    [message] = reports_to(smtp_server, YOKOHAMA)
    assert counts.letters == 1
    assert len([n for n in attachments(message) if n.endswith(".pdf")]) == 1
    assert (
        "ほか2名分の案内書は添付していません"
        in message.get_body(("plain",)).get_content()
    )


def test_report_empty_station_still_mailed(stations, smtp_server) -> None:
    counts = send(stations, smtp_server, ["st-yokohama"])

    [message] = reports_to(smtp_server, YOKOHAMA)
    _, data = csv_attachment(message)
    assert counts.reported == 1
    assert read_csv(data, "utf-8-sig") == []
    assert data.decode("utf-8-sig").splitlines()[0].split(",") == list(HEADERS)
    assert "新規の利用者はいません。" in message.get_body(("plain",)).get_content()


def _seed_many_stations(conn, count: int) -> dict[str, set[str]]:
    """Seed ``count`` stations with four users each and return the expected CSV ids.

    Per station: one lapsed 未更新 user, one active at-risk user (bounced,
    expiring in 10 days), one active user who is fine, and for every 50th
    station one lapsed 不達 user.
    """
    from psycopg2.extras import execute_values

    station_rows = []
    user_rows = []
    reminder_rows = []
    expected: dict[str, set[str]] = {}
    user_id = 0
    for number in range(count):
        station_id = f"st-{number:03d}"
        station_rows.append(
            (station_id, f"第{number}消防本部", [f"report@{station_id}.example.jp"])
        )
        expected[station_id] = set()
        kinds = ["lapsed", "at_risk", "fine"] + (
            ["bounced_lapsed"] if number % 50 == 0 else []
        )
        for kind in kinds:
            user_id += 1
            expires = (
                jst(2026, 11, 1, 10) if "lapsed" in kind else jst(2026, 12, 14, 10)
            )
            user_rows.append(
                (
                    user_id,
                    station_id,
                    f"利用者{user_id}",
                    f"u{user_id}@docomo.ne.jp",
                    expires,
                )
            )
            if kind != "fine":
                expected[station_id].add(str(user_id))
            if kind in ("at_risk", "bounced_lapsed"):
                reminder_rows.append(
                    (
                        user_id,
                        expires,
                        -30,
                        "undeliverable",
                        f"u{user_id}@docomo.ne.jp",
                        jst(2026, 11, 14, 9),
                        "5.1.1",
                        "user_unknown",
                        "550 5.1.1 User unknown",
                    )
                )
            elif kind == "fine":
                reminder_rows.append(
                    (
                        user_id,
                        expires,
                        -30,
                        "sent",
                        f"u{user_id}@docomo.ne.jp",
                        jst(2026, 11, 14, 9),
                        None,
                        None,
                        None,
                    )
                )
    with conn.cursor() as cur:
        execute_values(
            cur,
            "INSERT INTO net119.stations (id, name, report_emails) VALUES %s",
            station_rows,
        )
        execute_values(
            cur,
            "INSERT INTO net119.users (id, station_id, name, email, expires_at) VALUES %s",
            user_rows,
            page_size=1000,
        )
        execute_values(
            cur,
            "INSERT INTO net119.reminders (user_id, cycle_expires_at, offset_days, outcome,"
            " recipient, sent_at, status_code, bounce_category, diagnostic) VALUES %s",
            reminder_rows,
            page_size=1000,
        )
    conn.commit()
    transitions.apply_expiry_transitions(conn, now=NOW)
    return expected


def test_report_isolation_750_stations(db, smtp_server) -> None:
    expected = _seed_many_stations(db, 750)

    batches = service.list_report_batches(
        db, run_date=RUN_DATE, report_settings=ReportSettings()
    )
    assert len(batches) == 15
    assert all(len(batch) == 50 for batch in batches)
    # Letters are tested elsewhere; rendering 765 of them would take minutes.
    no_letters = ReportSettings(max_letters=0)
    for batch in batches:
        counts = send(db, smtp_server, batch, report_settings=no_letters)
        assert counts.reported == 50

    assert len(smtp_server.messages) == 750
    seen: set[str] = set()
    for mail in smtp_server.messages:
        [recipient] = mail.recipients
        station_id = recipient.split("@")[1].removesuffix(".example.jp")
        _, data = csv_attachment(parse(mail))
        ids = {row["利用者ID"] for row in read_csv(data, "utf-8-sig")}
        assert ids == expected[station_id], station_id
        seen.add(station_id)
    assert seen == set(expected)
    assert (
        service.list_report_batches(
            db, run_date=RUN_DATE, report_settings=ReportSettings()
        )
        == []
    )


def test_report_cadence_off_sends_nothing(population, smtp_server) -> None:
    off = ReportSettings(cadence="off")

    batches = service.list_report_batches(
        population, run_date=RUN_DATE, report_settings=off
    )
    counts = send(population, smtp_server, ["st-yokohama"], report_settings=off)

    assert batches == []
    assert counts.skipped_not_due == 1
    assert smtp_server.messages == []
