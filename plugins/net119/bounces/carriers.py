"""Japanese mobile carrier domains and their own bounce notices.

docomo and au sometimes report a failed delivery with a notice in Japanese
instead of an RFC 3464 DSN, in ISO-2022-JP, Shift_JIS or EUC-JP. The notice
names the recipient on a labelled line (宛先, 送信先, 受信者) and gives the
reason in Japanese, often with the SMTP reply of the carrier's mail server.
The detector here reads such notices from any Japanese mail system; the
parser reports them as carrier notices when the sender is a carrier domain.

docomo and au reply with 550 both for an unknown address and for the user's
reject settings, so a 550 from them does not prove that the address is gone.
"""

from __future__ import annotations

import re

from net119.bounces.categories import categorize, find_smtp_code, find_status
from net119.bounces.model import RecipientResult

# Domain suffix to carrier name. Sub-domains count (biz.ezweb.ne.jp is au,
# t.vodafone.ne.jp is SoftBank).
CARRIER_DOMAINS: dict[str, str] = {
    "docomo.ne.jp": "docomo",
    "ezweb.ne.jp": "au",
    "au.com": "au",
    "softbank.ne.jp": "softbank",
    "i.softbank.jp": "softbank",
    "vodafone.ne.jp": "softbank",
    "disney.ne.jp": "softbank",
}

# Addresses that carriers issued before 2009 may contain consecutive dots and a
# dot before the @, so the local part pattern accepts any dot placement.
ADDRESS_RE = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+"
)

_FAILURE_RE = re.compile(
    r"配信できません|送信できません|届けられません|お届けできません|配送できません|"
    r"届きませんでした|配信に失敗|送信に失敗|不達|エラー"
)
_RECIPIENT_LABEL_RE = re.compile(
    r"^[ \t　]*(?:宛先|あて先|送信先|受信者|受取人)[^:：\n]{0,12}[:：][ \t　]*<?("
    + ADDRESS_RE.pattern
    + r")>?",
    re.MULTILINE,
)
# A reason label may follow a short qualifier, as in 「サーバーの応答：」.
_REASON_LABEL_RE = re.compile(
    r"^[ \t　]*[^:：\n]{0,6}?"
    r"(?:理由|原因|エラー内容|エラー|詳細|内容|応答)"
    r"[^:：\n]{0,12}[:：][ \t　]*(.+)$",
    re.MULTILINE,
)
_SMTP_LINE_RE = re.compile(r"^.*(?<!\d)[45]\d\d[ \-].*$", re.MULTILINE)

_MAX_DIAGNOSTIC_CHARS = 500


def carrier_of(address_or_domain: str | None) -> str | None:
    """Return the carrier name of an address or domain, or ``None``."""
    if not address_or_domain:
        return None
    domain = address_or_domain.rpartition("@")[2].strip().strip(">").lower()
    for suffix, carrier in CARRIER_DOMAINS.items():
        if domain == suffix or domain.endswith("." + suffix):
            return carrier
    return None


def _diagnostic_from(paragraph: str, fallback: str) -> str:
    lines = [match.group(1).strip() for match in _REASON_LABEL_RE.finditer(paragraph)]
    if not lines:
        lines = [
            match.group(1).strip() for match in _REASON_LABEL_RE.finditer(fallback)
        ]
    if not any(find_smtp_code(line) for line in lines):
        smtp_line = _SMTP_LINE_RE.search(paragraph) or _SMTP_LINE_RE.search(fallback)
        if smtp_line is not None:
            lines.append(smtp_line.group(0).strip())
    return " ".join(lines)[:_MAX_DIAGNOSTIC_CHARS]


def parse_japanese_notice(
    notification: str, excluded: frozenset[str], fallback_recipients: tuple[str, ...]
) -> tuple[RecipientResult, ...]:
    """Read the failed recipients from a bounce notice written in Japanese.

    ``notification`` is the notice's decoded text without the returned
    original. ``excluded`` contains lower-cased addresses that are never the
    failed recipient (the notice's sender and the bounce address).
    ``fallback_recipients`` (the returned original's To) is used when no
    labelled recipient line exists. Returns no recipients when the text does
    not read as a failure notice.
    """
    if _FAILURE_RE.search(notification) is None:
        return ()

    found: list[tuple[str, str]] = []
    for paragraph in re.split(r"\n[ \t　]*\n", notification):
        for match in _RECIPIENT_LABEL_RE.finditer(paragraph):
            address = match.group(1)
            if address.lower() not in excluded:
                found.append((address, paragraph))
    if not found:
        found = [
            (address, notification)
            for address in fallback_recipients
            if address.lower() not in excluded
        ]

    results: list[RecipientResult] = []
    seen: set[str] = set()
    for address, paragraph in found:
        if address.lower() in seen:
            continue
        seen.add(address.lower())
        diagnostic = _diagnostic_from(paragraph, notification)
        status = find_status(diagnostic)
        results.append(
            RecipientResult(
                recipient=address,
                action="failed",
                status=status,
                smtp_code=find_smtp_code(diagnostic),
                diagnostic=diagnostic or None,
                category=categorize(status, diagnostic),
                is_final_failure=True,
                carrier=carrier_of(address),
            )
        )
    return tuple(results)
