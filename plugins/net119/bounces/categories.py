"""Map status codes and diagnostic text to a reason category.

Enhanced status codes follow RFC 3463 (``class.subject.detail``). The
diagnostic keywords cover the English texts of common MTAs and the Japanese
texts of carrier notices. Explicit words about the cause (quota, reject
settings, disabled account, queue expiry) outrank the status code, because
carriers and some MTAs send a generic code such as 550 5.1.1 for every
rejection.
"""

from __future__ import annotations

import re

from net119.bounces.model import ReasonCategory

STATUS_RE = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d.])")
SMTP_CODE_RE = re.compile(r"(?<!\d)([245]\d\d)(?:[ \-]|$)")

# Phrases of an MTA that gave up because the message stayed in its queue too
# long. A bare "expired" is left out: "account expired" is no queue expiry.
_EXPIRED_RE = re.compile(
    r"(?:message|delivery|queue|retry)[^.\n]{0,20}expired|expired (?:in|after)|"
    r"too long in (?:the )?queue|in the queue too long|queue lifetime|"
    r"retry time(?:out)? (?:not reached|exceeded)|delivery time ?out|"
    r"配信期限|時間切れ|再送期限|再送を中止",
    re.IGNORECASE,
)
_MAILBOX_FULL_RE = re.compile(
    r"quota|mailbox (?:is )?full|mailbox size limit|insufficient (?:system )?storage|"
    r"over ?quota|exceeded storage|容量|満杯|いっぱい|上限を超",
    re.IGNORECASE,
)
_FILTERED_RE = re.compile(
    r"recipient(?:'s)? settings|reject(?:ion)? settings|receiving settings|"
    r"\bspam\b|junk mail|blocked|blacklist|block ?list|denied by policy|"
    r"policy (?:reasons|rejection|violation)|content rejected|message rejected|"
    r"受信拒否|拒否設定|受信設定|迷惑メール|受信リスト|指定受信|フィルタ",
    re.IGNORECASE,
)
# Postfix writes "delivery temporarily suspended" for a host it cannot reach,
# which is no suspended mailbox.
_SUSPENDED_RE = re.compile(
    r"(?<!temporarily )(?:disabled|suspended|deactivated)|"
    r"inactive (?:user|account|mailbox)|account (?:is )?(?:locked|closed|inactive)|"
    r"利用停止|停止中|休止|解約",
    re.IGNORECASE,
)
_USER_UNKNOWN_RE = re.compile(
    r"user unknown|unknown user|no such user|no such (?:mailbox|recipient)|"
    r"does ?n[o']t exist|address not found|recipient not found|"
    r"unknown (?:recipient|mailbox|local part)|invalid (?:recipient|mailbox)|"
    r"mailbox not found|not our customer|no mailbox here|"
    r"宛先不明|存在しません|見つかりません|存在しない",
    re.IGNORECASE,
)
_HOST_UNKNOWN_RE = re.compile(
    r"host (?:or domain name )?not found|host unknown|unknown host|domain not found|"
    r"no such domain|nxdomain|unrouteable|no mx|name service error|"
    r"ドメインが存在|ホストが見つかりません|ドメインが見つかりません",
    re.IGNORECASE,
)

# RFC 3463 subject.detail pairs that name one category by themselves.
_STATUS_CATEGORIES: dict[tuple[str, str], ReasonCategory] = {
    ("1", "1"): ReasonCategory.USER_UNKNOWN,
    ("1", "6"): ReasonCategory.USER_UNKNOWN,
    # Exchange Online uses 5.1.10 for a recipient that does not exist.
    ("1", "10"): ReasonCategory.USER_UNKNOWN,
    ("1", "2"): ReasonCategory.HOST_UNKNOWN,
    ("4", "4"): ReasonCategory.HOST_UNKNOWN,
    ("2", "2"): ReasonCategory.MAILBOX_FULL,
    ("2", "1"): ReasonCategory.SUSPENDED,
    ("4", "7"): ReasonCategory.EXPIRED,
}


def find_status(text: str | None) -> str | None:
    """Return the first enhanced status code (``5.1.1``) in ``text``."""
    if not text:
        return None
    match = STATUS_RE.search(text)
    if match is None:
        return None
    return ".".join(match.groups())


def find_smtp_code(text: str | None) -> int | None:
    """Return the first three-digit SMTP reply code (``550``) in ``text``."""
    if not text:
        return None
    match = SMTP_CODE_RE.search(text)
    if match is None:
        return None
    return int(match.group(1))


def categorize(status: str | None, diagnostic: str | None) -> ReasonCategory:
    """Return the reason category for one failed or delayed recipient."""
    text = diagnostic or ""
    subject_detail: tuple[str, str] | None = None
    if status:
        match = STATUS_RE.fullmatch(status)
        if match is not None:
            subject_detail = (match.group(2), match.group(3))

    # A named cause is more useful to station staff than the expiry that
    # followed it, so mailbox full, filtering and suspension come first.
    if subject_detail == ("2", "2") or _MAILBOX_FULL_RE.search(text):
        return ReasonCategory.MAILBOX_FULL
    if _FILTERED_RE.search(text):
        return ReasonCategory.FILTERED
    if _SUSPENDED_RE.search(text):
        return ReasonCategory.SUSPENDED
    if subject_detail == ("4", "7") or _EXPIRED_RE.search(text):
        return ReasonCategory.EXPIRED

    if subject_detail is not None:
        if subject_detail in _STATUS_CATEGORIES:
            return _STATUS_CATEGORIES[subject_detail]
        if subject_detail[0] == "7":
            return ReasonCategory.FILTERED

    if _USER_UNKNOWN_RE.search(text):
        return ReasonCategory.USER_UNKNOWN
    if _HOST_UNKNOWN_RE.search(text):
        return ReasonCategory.HOST_UNKNOWN
    return ReasonCategory.OTHER
