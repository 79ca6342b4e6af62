"""Japanese labels that station staff read in reports and letters."""

from __future__ import annotations

from net119.schedule import offset_label

LIST_LABELS: dict[str, str] = {
    "undeliverable": "失効中",
    "not_renewed": "失効中",
    "at_risk": "期限間近（不達）",
}

STATUS_LABELS: dict[str, str] = {
    "active": "利用中",
    "lapsed": "失効中",
}

REASON_LABELS: dict[str, str] = {
    "undeliverable": "不達",
    "not_renewed": "未更新",
}

OUTCOME_LABELS: dict[str, str] = {
    "sent": "送信済み",
    "undeliverable": "不達",
    "confirmed": "更新確認済み",
    "failed": "送信失敗",
    "skipped": "省略",
}

# Bounce reason categories (net119.bounces.model.ReasonCategory), worded for
# what staff ask the user.
CATEGORY_LABELS: dict[str, str] = {
    "user_unknown": "宛先不明（アドレスが存在しない）",
    "host_unknown": "ドメイン不明",
    "mailbox_full": "メールボックス容量超過",
    "filtered": "受信拒否（迷惑メール設定など）",
    "suspended": "アドレス利用停止中",
    "expired": "配送期限切れ（相手先に届かないまま時間切れ）",
    "other": "その他",
}


def step_text(kind: str | None, offset_days: int | None) -> str:
    """Return 「90日前」…「当日」…「180日後」 for a schedule step, 「手動再送」 for a resend."""
    if kind is None:
        return ""
    if kind == "manual" or offset_days is None:
        return "手動再送"
    return offset_label(offset_days)


def failure_text(outcome: str | None, failure_reason: str | None) -> str:
    """Return the Japanese reason of a send that failed before any bounce.

    ``failure_reason`` is the operator-facing English text stored in the
    reminder ledger; only its kind is shown to station staff. Other outcomes
    (a bounce or a rejection, 不達) get no text here: their category and
    diagnostic have columns of their own.
    """
    if outcome != "failed" or not failure_reason:
        return ""
    if failure_reason.startswith("invalid address"):
        return "メールアドレスの形式が正しくありません"
    return "一時的な送信エラー"


def category_text(category: str | None) -> str:
    if not category:
        return ""
    return CATEGORY_LABELS.get(category, category)
