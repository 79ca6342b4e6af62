"""Reminder composition and address checks."""

from __future__ import annotations

import datetime as dt
import email
from email import policy
from pathlib import Path

import pytest

from net119.config import Settings
from net119.mail.addresses import address_problem, mask_address
from net119.mail.compose import (
    ReminderContent,
    compose_reminder,
    hash_token,
    new_renewal_token,
    render_body,
    wording_for,
)
from net119.schedule import TOKYO

TEMPLATES = Path(__file__).resolve().parents[1] / "include" / "templates"
NOW = dt.datetime(2026, 12, 4, 0, 0, tzinfo=dt.timezone.utc)


def content(recipient: str = "user@docomo.ne.jp", wording: str = "before",
            name: str = "山田 太郎") -> ReminderContent:
    return ReminderContent(
        recipient=recipient,
        user_name=name,
        station_name="横浜市消防局",
        station_phone="045-000-0000",
        station_fax="045-000-0001",
        station_email="net119@yokohama.example.jp",
        expires_at=dt.datetime(2027, 2, 2, 10, 0, tzinfo=TOKYO),
        wording=wording,
        renewal_url="https://renew.example.jp/renew/abcdefghijklmnopqrstuvwxyz012345",
        message_id="<0123456789abcdef0123@net119.example.jp>",
        envelope_from="bounce+0123456789abcdef0123@net119.example.jp",
    )


@pytest.mark.parametrize("wording", ["before", "due", "after"])
def test_body_within_jis_x_0208(wording: str) -> None:
    body = render_body(content(wording=wording), Settings())

    body.encode("iso-2022-jp")  # raises for characters outside JIS X 0208


@pytest.mark.parametrize("wording", ["before", "due", "after"])
def test_body_lines_short(wording: str) -> None:
    body = render_body(content(wording=wording), Settings())

    assert max(len(line.encode("utf-8")) for line in body.splitlines()) < 200


@pytest.mark.parametrize("wording", ["before", "due", "after"])
def test_body_states_required_facts(wording: str) -> None:
    body = render_body(content(wording=wording), Settings())

    assert "令和9年（2027年）2月2日 10時00分" in body
    assert "https://renew.example.jp/renew/abcdefghijklmnopqrstuvwxyz012345" in body
    assert "横浜市消防局" in body
    assert "045-000-0000" in body
    assert "緊急通報と練習通報" in body
    assert "net119.example.jp" in body


def test_headers_of_reminder() -> None:
    raw = compose_reminder(content(), Settings(), NOW).as_bytes()
    parsed = email.message_from_bytes(raw, policy=policy.default)

    assert parsed["Subject"] == "【NET119】定期更新手続きのお願い"
    assert parsed["Message-ID"] == "<0123456789abcdef0123@net119.example.jp>"
    assert parsed["Auto-Submitted"] == "auto-generated"
    assert parsed["To"] == "user@docomo.ne.jp"
    assert parsed["From"].addresses[0].addr_spec == "noreply@net119.example.jp"
    assert parsed.get_content_charset() == "utf-8"


def test_pre_2009_address_kept_verbatim() -> None:
    raw = compose_reminder(content("taro..yamada.@docomo.ne.jp"), Settings(), NOW).as_bytes()

    assert b"\nTo: taro..yamada.@docomo.ne.jp\n" in raw


def test_iso_2022_jp_for_configured_domain() -> None:
    settings = Settings(iso2022jp_domains=("ezweb.ne.jp",))
    message = compose_reminder(content("user@ezweb.ne.jp", name="髙橋 𠮷男"), settings, NOW)
    parsed = email.message_from_bytes(message.as_bytes(), policy=policy.default)

    assert parsed.get_content_charset() == "iso-2022-jp"
    assert parsed["Content-Transfer-Encoding"] == "7bit"
    assert b"=?iso-2022-jp?" in message.as_bytes()
    assert b"=?utf-8?" not in message.as_bytes()
    assert parsed["Subject"] == "【NET119】定期更新手続きのお願い"
    assert parsed.get_content().startswith("〓橋 〓男 様")


def test_utf8_keeps_name_outside_jis() -> None:
    message = compose_reminder(content(name="髙橋 𠮷男"), Settings(), NOW)
    parsed = email.message_from_bytes(message.as_bytes(), policy=policy.default)

    assert parsed.get_content().startswith("髙橋 𠮷男 様")


def test_wording_by_date() -> None:
    expires_at = dt.datetime(2026, 12, 4, 0, 30, tzinfo=TOKYO)

    assert wording_for(expires_at, dt.date(2026, 12, 3)) == "before"
    assert wording_for(expires_at, dt.date(2026, 12, 4)) == "due"
    assert wording_for(expires_at, dt.date(2026, 12, 5)) == "after"


def test_renewal_token_hash_only() -> None:
    token, digest = new_renewal_token()

    assert len(token) >= 32
    assert digest == hash_token(token)
    assert len(digest) == 32
    assert token.encode() not in digest


def test_missing_template_dir_message(tmp_path) -> None:
    settings = Settings(template_dir=tmp_path / "missing")

    with pytest.raises(FileNotFoundError, match="NET119_TEMPLATE_DIR"):
        render_body(content(), settings)


@pytest.mark.parametrize(
    "address",
    [
        "user@docomo.ne.jp",
        "taro..yamada.@docomo.ne.jp",
        "a.@ezweb.ne.jp",
        ".hanako@softbank.ne.jp",
        "first.last+tag@example.co.jp",
    ],
)
def test_address_accepted(address: str) -> None:
    assert address_problem(address) is None


@pytest.mark.parametrize(
    ("address", "problem"),
    [
        ("", "empty address"),
        ("no-at.docomo.ne.jp", "address must contain exactly one @"),
        ("a@b@docomo.ne.jp", "address must contain exactly one @"),
        ("taro yamada@docomo.ne.jp", "space or control character in address"),
        ("太郎@docomo.ne.jp", "non-ASCII characters in address"),
        ("taro＠docomo.ne.jp", "non-ASCII characters in address"),
        ("taro@", "empty domain"),
        ("taro@localhost", "domain has no dot"),
        ("@docomo.ne.jp", "empty local part"),
        ("ta<ro@docomo.ne.jp", "invalid character in local part"),
        ("taro@-docomo.ne.jp", "invalid domain"),
        ("ip@127.0.0.1", "domain is not a host name"),
        ("a@b.123", "domain is not a host name"),
        ("a" * 60 + "@" + ".".join(["d" * 60] * 4) + ".jp",
         "address longer than 254 characters"),
    ],
)
def test_address_rejected(address: str, problem: str) -> None:
    assert address_problem(address) == problem


def test_mask_address_hides_local_part() -> None:
    assert mask_address("taro..yamada.@docomo.ne.jp") == "t***@docomo.ne.jp"


def test_control_characters_removed_from_body() -> None:
    sneaky = content(name="山田\r\nBcc: evil@example.jp\u202e太郎\x07")
    body = render_body(sneaky, Settings())

    assert body.splitlines()[0] == "山田 Bcc: evil@example.jp太郎 様"
    assert "\r" not in body
    assert "\x07" not in body


def test_overlong_name_rejected_with_reason() -> None:
    with pytest.raises(ValueError, match="longer than 900 bytes"):
        render_body(content(name="山" * 400), Settings())
