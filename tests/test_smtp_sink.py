"""Tests of the local SMTP sink against a real smtplib client."""

from __future__ import annotations

import email
import os
import signal
import smtplib
import subprocess
import sys
import time
from email import policy
from email.message import EmailMessage
from pathlib import Path

import pytest

from net119.devtools.smtp_sink import DATA_SIZE_LIMIT, SmtpSink

PROJECT_ROOT = Path(__file__).resolve().parent.parent
VERP_SENDER = "bounce+r12-k3f9x@bounce.example.jp"
LEGACY_RECIPIENT = "taro..yamada.@docomo.ne.jp"
SUBJECT = "【NET119】定期更新手続きのお願い"
BODY = "山田　太郎 様\n\n有効期限は令和8年（2026年）12月4日です。\n"


def _reminder(to: str, subject: str = SUBJECT) -> EmailMessage:
    message = EmailMessage()
    message["From"] = "NET119 <noreply@example.jp>"
    message["To"] = to
    message["Subject"] = subject
    message["Message-ID"] = "<r12.k3f9x@example.jp>"
    message.set_content(BODY)
    return message


def _read(path: Path) -> EmailMessage:
    with path.open("rb") as file:
        message = email.message_from_binary_file(file, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


def test_smtp_sink_stores_japanese_message(tmp_path: Path) -> None:
    with SmtpSink(tmp_path / "mail") as sink:
        with smtplib.SMTP(sink.host, sink.port, timeout=10) as client:
            refused_recipients = client.send_message(
                _reminder(LEGACY_RECIPIENT),
                from_addr=VERP_SENDER,
                to_addrs=[LEGACY_RECIPIENT, "hanako@ezweb.ne.jp"],
            )
        paths = sink.messages()

    assert refused_recipients == {}
    assert [path.name for path in paths] == ["00000001.eml"]
    stored = _read(paths[0])
    assert stored["Return-Path"] == f"<{VERP_SENDER}>"
    assert stored["X-Envelope-To"] == f"<{LEGACY_RECIPIENT}>, <hanako@ezweb.ne.jp>"
    assert stored["Subject"] == SUBJECT
    assert stored["To"] == LEGACY_RECIPIENT
    assert stored["Message-ID"] == "<r12.k3f9x@example.jp>"
    assert stored.get_content() == BODY


def test_smtp_sink_keeps_message_bytes(tmp_path: Path) -> None:
    data = _reminder(LEGACY_RECIPIENT).as_bytes(policy=policy.SMTP)
    with SmtpSink(tmp_path / "mail") as sink:
        with smtplib.SMTP(sink.host, sink.port, timeout=10) as client:
            client.sendmail(VERP_SENDER, [LEGACY_RECIPIENT], data)
        raw = sink.messages()[0].read_bytes()

    envelope, _, content = raw.partition(b"\r\nX-Envelope-To: ")
    assert envelope == f"Return-Path: <{VERP_SENDER}>".encode()
    header, _, rest = content.partition(b"\r\n")
    assert header == f"<{LEGACY_RECIPIENT}>".encode()
    assert rest == data


def test_smtp_sink_names_sort_by_arrival(tmp_path: Path) -> None:
    subjects = [f"通知 {number}" for number in range(12)]
    with SmtpSink(tmp_path / "mail") as sink:
        with smtplib.SMTP(sink.host, sink.port, timeout=10) as client:
            for subject in subjects:
                client.send_message(_reminder("a@example.jp", subject), VERP_SENDER)
        paths = sink.messages()

    assert [_read(path)["Subject"] for path in sorted(paths)] == subjects
    assert sink.received == len(subjects)


def test_smtp_sink_numbering_continues_after_restart(tmp_path: Path) -> None:
    directory = tmp_path / "mail"
    for subject in ("first", "second"):
        with SmtpSink(directory) as sink:
            with smtplib.SMTP(sink.host, sink.port, timeout=10) as client:
                client.send_message(_reminder("a@example.jp", subject), VERP_SENDER)

    names = sorted(path.name for path in directory.iterdir())
    assert names == ["00000001.eml", "00000002.eml"]
    assert _read(directory / "00000002.eml")["Subject"] == "second"


def test_smtp_sink_advertises_smtputf8_and_size(tmp_path: Path) -> None:
    utf8_recipient = "山田@example.jp"
    with SmtpSink(tmp_path / "mail") as sink:
        with smtplib.SMTP(sink.host, sink.port, timeout=10) as client:
            client.ehlo()
            has_smtputf8 = client.has_extn("smtputf8")
            size = client.esmtp_features.get("size")
            client.sendmail(
                VERP_SENDER,
                [utf8_recipient],
                _reminder(utf8_recipient).as_bytes(policy=policy.SMTPUTF8),
                mail_options=["SMTPUTF8"],
            )
        stored = _read(sink.messages()[0])

    assert has_smtputf8
    assert size == str(DATA_SIZE_LIMIT)
    assert stored["X-Envelope-To"] == f"<{utf8_recipient}>"


def test_smtp_sink_rejects_busy_port(tmp_path: Path) -> None:
    with SmtpSink(tmp_path / "first") as first:
        second = SmtpSink(tmp_path / "second", port=first.port)
        with pytest.raises(OSError):
            second.start()


def _wait_for(path: Path, process: subprocess.Popen[bytes], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        if process.poll() is not None:
            pytest.fail(f"sink exited early with status {process.returncode}")
        if time.monotonic() > deadline:
            pytest.fail(f"{path} did not appear within {seconds} s")
        time.sleep(0.05)


def test_smtp_sink_command_stops_on_sigterm(tmp_path: Path) -> None:
    directory = tmp_path / "mail"
    pid_file = tmp_path / "sink.pid"
    port_file = tmp_path / "sink.port"
    log_file = tmp_path / "sink.log"
    environment = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT / "plugins")}
    with log_file.open("wb") as log:
        process = subprocess.Popen(
            [
                sys.executable, "-m", "net119.devtools.smtp_sink",
                "--dir", str(directory), "--port", "0",
                "--pid-file", str(pid_file), "--port-file", str(port_file),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=environment,
        )
        try:
            _wait_for(port_file, process, seconds=20)
            port = int(port_file.read_text())
            with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
                client.send_message(_reminder(LEGACY_RECIPIENT), VERP_SENDER)
            pid = int(pid_file.read_text())
            process.send_signal(signal.SIGTERM)
            status = process.wait(timeout=20)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    output = log_file.read_text()

    assert pid == process.pid
    assert status == 0
    assert not pid_file.exists()
    assert not port_file.exists()
    assert [path.name for path in directory.glob("*.eml")] == ["00000001.eml"]
    assert "SMTP sink started" in output
    assert "stopped after 1 messages" in output
    # aiosmtpd's own INFO lines contain addresses, so the command silences them.
    assert "docomo.ne.jp" not in output


def test_sink_rejects_share_of_recipients(tmp_path) -> None:
    import smtplib

    from net119.devtools.smtp_sink import SmtpSink

    addresses = [f"user{n}@docomo.ne.jp" for n in range(400)]
    rejected: list[str] = []
    with SmtpSink(tmp_path / "mail", reject_percent=10) as sink:
        client = smtplib.SMTP(sink.host, sink.port, timeout=10)
        for address in addresses:
            try:
                client.sendmail("bounce+x@net119.example.jp", [address], b"Subject: t\r\n\r\nx\r\n")
            except smtplib.SMTPRecipientsRefused as exc:
                assert exc.recipients[address][0] == 550
                rejected.append(address)
        client.quit()
        stored = len(sink.messages())

    assert 10 <= len(rejected) <= 80
    assert stored == len(addresses) - len(rejected)
