"""Tests of ``parse_bounce`` over the sample bounces in tests/data/bounces.

Each ``NAME.eml`` has its expected result in ``NAME.expected.json`` beside it.
The table test compares every field on its own, so a failure names the field.
"""

from __future__ import annotations

import json
import logging
import random
from datetime import datetime
from email.mime.application import MIMEApplication
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from pathlib import Path
from typing import Any

import pytest

from net119.bounces import (
    MAX_BOUNCE_BYTES,
    BounceKind,
    BounceTooLarge,
    QuarantineReason,
    ReasonCategory,
    parse_bounce,
)
from net119.bounces.categories import categorize, find_smtp_code, find_status
from net119.bounces.text import decode_bytes

SAMPLES_DIR = Path(__file__).parent / "data" / "bounces"
SAMPLE_NAMES = sorted(path.stem for path in SAMPLES_DIR.glob("*.eml"))
RECIPIENT_FIELDS = (
    "recipient",
    "original_recipient",
    "action",
    "status",
    "smtp_code",
    "diagnostic",
    "category",
    "final_failure",
    "carrier",
)


def load_sample(name: str) -> tuple[bytes, dict[str, Any]]:
    raw = (SAMPLES_DIR / f"{name}.eml").read_bytes()
    expected = json.loads((SAMPLES_DIR / f"{name}.expected.json").read_text("utf-8"))
    return raw, expected


def recipient_fields(result: Any) -> dict[str, Any]:
    return {
        "recipient": result.recipient,
        "original_recipient": result.original_recipient,
        "action": result.action,
        "status": result.status,
        "smtp_code": result.smtp_code,
        "diagnostic": result.diagnostic,
        "category": result.category.value if result.category else None,
        "final_failure": result.is_final_failure,
        "carrier": result.carrier,
    }


def test_sample_table_is_complete() -> None:
    assert len(SAMPLE_NAMES) >= 20
    for name in SAMPLE_NAMES:
        assert (SAMPLES_DIR / f"{name}.expected.json").is_file(), name


@pytest.mark.parametrize("name", SAMPLE_NAMES)
def test_parse_bounce_sample(name: str, caplog: pytest.LogCaptureFixture) -> None:
    raw, expected = load_sample(name)

    with caplog.at_level(logging.WARNING):
        report = parse_bounce(raw)

    assert report.kind.value == expected["kind"]
    assert report.verp_token == expected["verp_token"]
    assert report.message_id == expected["message_id"]
    if expected["original_sent_at"] is None:
        assert report.original_sent_at is None
    else:
        assert report.original_sent_at == datetime.fromisoformat(
            expected["original_sent_at"]
        )
    quarantine = report.quarantine_reason.value if report.quarantine_reason else None
    assert quarantine == expected["quarantine_reason"]
    assert len(report.recipients) == len(expected["recipients"])
    for index, expected_recipient in enumerate(expected["recipients"]):
        actual = recipient_fields(report.recipients[index])
        for field in RECIPIENT_FIELDS:
            assert (
                actual[field] == expected_recipient[field]
            ), f"recipient {index} {field}"
    # A sample that the parser reads must not go through its catch-all.
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


def test_parse_bounce_mixed_dsn_final_failures() -> None:
    raw, _expected = load_sample("multi_recipient_mixed")

    report = parse_bounce(raw)

    assert report.has_final_failure
    assert [result.recipient for result in report.final_failures] == [
        "rokuro@example.org"
    ]


def test_parse_bounce_delayed_has_no_final_failure() -> None:
    raw, _expected = load_sample("delayed_postfix")

    report = parse_bounce(raw)

    assert report.kind is BounceKind.DELAYED
    assert not report.has_final_failure


def _dsn_with_attachment(attachment_size: int) -> bytes:
    """Build a DSN that returns the whole original, with a large attachment."""
    original = MIMEMultipart()
    original["Message-ID"] = "<r.big.f2kq7wm3xd6tca5r@net119.example.jp>"
    original["Date"] = "Wed, 02 Dec 2026 00:00:00 -0000"
    original.attach(MIMEText("本文", "plain", "utf-8"))
    original.attach(MIMEApplication(random.Random(7).randbytes(attachment_size)))

    head = (
        "From: MAILER-DAEMON@mx1.example.com\n"
        "To: bounce+f2kq7wm3xd6tca5r@net119.example.jp\n"
        "Subject: Undelivered Mail Returned to Sender\n"
        "MIME-Version: 1.0\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\n'
        "\n"
        "--B\n"
        "Content-Type: text/plain\n\n"
        "<big@example.com>: mailbox full\n\n"
        "--B\n"
        "Content-Type: message/delivery-status\n\n"
        "Reporting-MTA: dns; mx1.example.com\n\n"
        "Final-Recipient: rfc822; big@example.com\n"
        "Action: failed\n"
        "Status: 5.2.2\n"
        "Diagnostic-Code: smtp; 552 5.2.2 Mailbox full\n\n"
        "--B\n"
        "Content-Type: message/rfc822\n\n"
    )
    return head.encode("ascii") + original.as_bytes() + b"\n--B--\n"


def test_parse_bounce_huge_attachment_within_limit() -> None:
    raw = _dsn_with_attachment(6 * 1024 * 1024)
    assert 6 * 1024 * 1024 < len(raw) <= MAX_BOUNCE_BYTES

    report = parse_bounce(raw)

    assert report.kind is BounceKind.DSN
    assert report.verp_token == "f2kq7wm3xd6tca5r"
    assert report.message_id == "<r.big.f2kq7wm3xd6tca5r@net119.example.jp>"
    assert report.recipients[0].category is ReasonCategory.MAILBOX_FULL


def test_parse_bounce_oversized_raises() -> None:
    raw = _dsn_with_attachment(8 * 1024 * 1024)
    assert len(raw) > MAX_BOUNCE_BYTES

    with pytest.raises(BounceTooLarge) as caught:
        parse_bounce(raw)

    assert caught.value.reason is QuarantineReason.OVERSIZED
    assert caught.value.size == len(raw)
    assert caught.value.limit == MAX_BOUNCE_BYTES


def test_parse_bounce_custom_size_limit() -> None:
    raw, _expected = load_sample("postfix_user_unknown")

    with pytest.raises(BounceTooLarge):
        parse_bounce(raw, max_bytes=len(raw) - 1)
    assert parse_bounce(raw, max_bytes=len(raw)).kind is BounceKind.DSN


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\n\n\n",
        b"\x00" * 64,
        b"\xff\xfe\xfd" * 100,
        b"Not a header line at all\r\nstill not\r\n",
        b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n",
    ],
)
def test_parse_bounce_garbage_is_unparseable(raw: bytes) -> None:
    report = parse_bounce(raw)

    assert report.kind is BounceKind.UNRECOGNISED
    assert report.quarantine_reason is QuarantineReason.UNPARSEABLE
    assert report.recipients == ()


@pytest.mark.parametrize("name", SAMPLE_NAMES)
def test_parse_bounce_damaged_sample_never_fails(
    name: str, caplog: pytest.LogCaptureFixture
) -> None:
    raw, _expected = load_sample(name)
    rng = random.Random(name)
    variants = [raw[:cut] for cut in range(0, len(raw), max(1, len(raw) // 40))]
    for _ in range(20):
        damaged = bytearray(raw)
        for _ in range(10):
            damaged[rng.randrange(len(damaged))] = rng.randrange(256)
        variants.append(bytes(damaged))

    with caplog.at_level(logging.WARNING):
        for variant in variants:
            parse_bounce(variant)

    # Damaged input must be handled by the detectors, not by the catch-all,
    # and flufl.bounce must not fail on it either.
    failures = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert failures == []


def test_parse_bounce_custom_verp_prefix() -> None:
    raw, _expected = load_sample("postfix_user_unknown")
    renamed = raw.replace(b"bounce+k7q2m4xa9c3dpt5w@", b"ret+k7q2m4xa9c3dpt5w@")

    assert parse_bounce(renamed, verp_prefix="ret").verp_token == "k7q2m4xa9c3dpt5w"
    # Every occurrence was renamed, so the default prefix finds no token.
    assert parse_bounce(renamed).verp_token is None


def test_parse_bounce_verp_from_returned_return_path() -> None:
    raw, _expected = load_sample("qmail_no_mailbox")
    forwarded = raw.replace(
        b"Delivered-To: bounce+h6tf2kq3ve7nsa4y@net119.example.jp\n", b""
    ).replace(
        b"To: bounce+h6tf2kq3ve7nsa4y@net119.example.jp\n", b"To: ops@example.jp\n"
    )

    report = parse_bounce(forwarded)

    assert report.verp_token == "h6tf2kq3ve7nsa4y"


def test_decode_bytes_mislabelled_shift_jis() -> None:
    text = "受信拒否設定により受信が拒否されました"

    assert decode_bytes(text.encode("cp932"), "iso-2022-jp") == text
    assert decode_bytes(text.encode("euc-jp"), "iso-2022-jp") == text
    assert decode_bytes(text.encode("euc-jp"), "shift_jis") == text
    assert decode_bytes(text.encode("cp932"), "euc-jp") == text
    assert decode_bytes(text.encode("cp932"), None) == text
    assert decode_bytes(text.encode("utf-8"), "x-unknown-charset") == text


def test_decode_bytes_invalid_bytes_replaced() -> None:
    assert "\ufffd" in decode_bytes(b"\xff\xfe\x80abc", "utf-8")


@pytest.mark.parametrize(
    ("status", "diagnostic", "category"),
    [
        (
            "5.1.1",
            "550 5.1.1 <a@example.com>: Recipient address rejected: User unknown",
            "user_unknown",
        ),
        (None, "550 No such user here", "user_unknown"),
        ("5.1.2", "", "host_unknown"),
        ("5.4.4", "Host or domain name not found", "host_unknown"),
        ("5.2.2", "", "mailbox_full"),
        ("4.2.2", "", "mailbox_full"),
        (
            "5.0.0",
            "552 Requested mail action aborted: exceeded storage allocation",
            "mailbox_full",
        ),
        ("5.7.1", "550 5.7.1 Message rejected as spam", "filtered"),
        (None, "550 Rejected by recipient settings", "filtered"),
        (
            "5.1.1",
            "受信拒否設定により受信が拒否されました 550 Unknown user",
            "filtered",
        ),
        (
            "5.2.1",
            "The email account that you tried to reach is disabled.",
            "suspended",
        ),
        (None, "550 5.2.1 mailbox suspended", "suspended"),
        ("4.4.7", "", "expired"),
        ("4.4.1", "delivery temporarily suspended: Connection timed out", "other"),
        (None, "retry timeout exceeded", "expired"),
        ("5.1.1", "550 5.1.1 user account has expired", "user_unknown"),
        ("5.0.0", "", "other"),
        (None, None, "other"),
    ],
)
def test_categorize_status_and_keywords(
    status: str | None, diagnostic: str | None, category: str
) -> None:
    assert categorize(status, diagnostic).value == category


def test_find_status_and_smtp_code() -> None:
    assert find_status("550-5.2.1 The email account") == "5.2.1"
    assert find_status("Sorry (#5.1.1)") == "5.1.1"
    assert find_status("host 192.0.2.1 said no") is None
    assert find_smtp_code("host 192.0.2.25 said: 550 5.1.1 unknown") == 550
    assert find_smtp_code("2026-12-02 09:00") is None
