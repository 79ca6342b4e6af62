"""Japanese labels of the station report's CSV cells."""

from __future__ import annotations

from net119.reports import labels


def test_failure_text_for_invalid_address() -> None:
    text = labels.failure_text("failed", "invalid address: empty domain")

    assert text == "メールアドレスの形式が正しくありません"


def test_failure_text_for_temporary_failure() -> None:
    assert labels.failure_text("failed", "temporary SMTP failure (451)") == "一時的な送信エラー"


def test_failure_text_empty_for_bounce() -> None:
    reason = "returned as undeliverable by a bounce (5.1.1)"

    assert labels.failure_text("undeliverable", reason) == ""


def test_failure_text_empty_for_sent() -> None:
    assert labels.failure_text("sent", None) == ""
