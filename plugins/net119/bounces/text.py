"""Decode message text whose charset label may be missing or wrong.

Japanese bounce notices arrive in ISO-2022-JP, Shift_JIS (CP932) or EUC-JP,
and some servers label a Shift_JIS body as ISO-2022-JP. ``decode_bytes``
tries the declared charset first and, when that fails strictly, detects the
encoding from the bytes themselves. It never raises.
"""

from __future__ import annotations

import codecs
import re
from email.errors import HeaderParseError
from email.header import decode_header
from email.message import Message
from email.policy import Compat32

# Codecs to try, in order, for ISO-2022-JP text. The extensions add half-width
# katakana and JIS X 0212 characters that some mailers send under the label.
_ISO2022_JP_CODECS = ("iso2022_jp", "iso2022_jp_ext", "iso2022_jp_2")

# Candidates for 8-bit Japanese text. CP932 is the Microsoft superset of
# Shift_JIS that carriers and Windows mailers produce.
_JAPANESE_8BIT_CANDIDATES = ("cp932", "euc_jp")
# Declared 8-bit Japanese charsets and the candidate they prefer.
_JAPANESE_8BIT_CODECS = {"shift_jis": "cp932", "cp932": "cp932", "euc_jp": "euc_jp"}

_JAPANESE_CHARS = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff\uff01-\uff5e\u3000-\u303f]")
_HALFWIDTH_KATAKANA = re.compile(r"[\uff61-\uff9f]")

_MAX_DIAGNOSTIC_CHARS = 500
_MAX_DIAGNOSTIC_LINES = 6

# Maximum bytes of one part that the parser decodes; longer text is cut, so a
# large returned message cannot slow down the keyword scans.
MAX_TEXT_BYTES = 256 * 1024


class RawHeaderPolicy(Compat32):
    """The compat32 policy, but header values stay the strings that were parsed.

    compat32 wraps a value with 8-bit bytes in an ``email.header.Header``,
    whose ``str()`` loses the bytes and which code that expects ``str``
    (flufl.bounce's detectors) fails on. Here the bytes stay as surrogate
    escapes, which ``header_text`` decodes.
    """

    def header_fetch_parse(self, name: str, value: str) -> str:
        return value


#: Policy for parsing bounces: see ``RawHeaderPolicy``.
PARSE_POLICY = RawHeaderPolicy()


def codec_name(charset: str | None) -> str | None:
    """Return Python's codec name for a MIME charset label, or ``None``."""
    if not charset:
        return None
    try:
        return codecs.lookup(charset.strip().strip('"').lower()).name
    except (LookupError, UnicodeError, ValueError):
        # ValueError: a damaged label with a NUL; UnicodeError: 8-bit bytes.
        return None


def _japanese_score(text: str) -> float:
    """Score how plausible ``text`` is as Japanese: higher is better.

    Half-width katakana is rare in notices and is what EUC-JP bytes read as
    CP932 often turn into, so it counts against the guess.
    """
    if not text:
        return 0.0
    japanese = len(_JAPANESE_CHARS.findall(text))
    halfwidth = len(_HALFWIDTH_KATAKANA.findall(text))
    return (japanese - 2 * halfwidth) / len(text)


def _try_decode(data: bytes, codec: str) -> str | None:
    try:
        return data.decode(codec)
    except (UnicodeDecodeError, LookupError):
        return None


def detect_and_decode(data: bytes, preferred: str | None = None) -> str:
    """Decode bytes of unknown charset, trying the Japanese encodings in use.

    ``preferred`` is a Python codec name that wins a tie, normally the
    declared charset. Text that reads as Japanese in no candidate encoding
    is decoded as UTF-8 with U+FFFD for the invalid bytes.
    """
    if data.isascii():
        if b"\x1b$" in data or b"\x1b(" in data:
            for codec in _ISO2022_JP_CODECS:
                text = _try_decode(data, codec)
                if text is not None:
                    return text
        return data.decode("ascii")

    # Valid UTF-8 with multibyte sequences is almost never a coincidence in
    # CP932 or EUC-JP text.
    text = _try_decode(data, "utf-8")
    if text is not None:
        return text

    candidates = list(_JAPANESE_8BIT_CANDIDATES)
    if preferred is not None and preferred in candidates:
        candidates.remove(preferred)
        candidates.insert(0, preferred)
    best_text: str | None = None
    best_score = 0.0
    for codec in candidates:
        text = _try_decode(data, codec)
        if text is None:
            continue
        score = _japanese_score(text)
        if score > best_score:
            best_text, best_score = text, score
    if best_text is not None:
        return best_text
    return data.decode("utf-8", errors="replace")


def decode_bytes(data: bytes, declared: str | None = None) -> str:
    """Decode ``data`` with its declared charset, falling back to detection.

    A declared charset that fails to decode strictly, or a 7-bit label such
    as ISO-2022-JP on 8-bit bytes, is treated as a wrong label. Shift_JIS
    and EUC-JP bytes often decode without error in each other's codec, so
    for a Japanese label the candidate that reads best as Japanese wins.
    """
    codec = codec_name(declared)
    if codec is None or codec == "ascii":
        return detect_and_decode(data)
    if codec == "iso2022_jp" and not data.isascii():
        return detect_and_decode(data)
    if codec in _JAPANESE_8BIT_CODECS:
        return detect_and_decode(data, preferred=_JAPANESE_8BIT_CODECS[codec])
    candidates = _ISO2022_JP_CODECS if codec == "iso2022_jp" else (codec,)
    for candidate in candidates:
        text = _try_decode(data, candidate)
        if text is not None:
            return text
    return detect_and_decode(data)


def part_text(part: Message, limit: int = MAX_TEXT_BYTES) -> str:
    """Return the decoded text of a leaf MIME part, cut at ``limit`` bytes."""
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    if len(payload) > limit:
        payload = payload[:limit]
    return decode_bytes(payload, part.get_content_charset())


def header_text(value: object) -> str:
    """Decode a header value to text: RFC 2047 words and raw 8-bit bytes.

    The compat32 parser keeps undecodable 8-bit header bytes as surrogate
    escapes; they are turned back into bytes and decoded like a body.
    """
    if value is None:
        return ""
    raw = str(value)
    if "=?" in raw:
        try:
            chunks = decode_header(raw)
        except (HeaderParseError, ValueError, LookupError, UnicodeError):
            chunks = [(raw, None)]
        pieces = []
        for chunk, charset in chunks:
            if isinstance(chunk, bytes):
                pieces.append(decode_bytes(chunk, charset))
            else:
                pieces.append(chunk)
        raw = "".join(pieces)
    if any("\udc80" <= char <= "\udcff" for char in raw):
        raw = detect_and_decode(raw.encode("utf-8", errors="surrogateescape"))
    return " ".join(raw.split())


_ADDRESS_LINE_RE = re.compile(r"^<?[^\s<>@]+@[^\s<>@]+>?")


def diagnostic_near(text: str, address: str) -> str:
    """Return the paragraph of ``text`` that follows the first mention of ``address``.

    The lines from the mention to the next blank line, or to the next line
    that starts with another address, at most six, are joined with single
    spaces. Returns ``""`` when ``text`` does not mention the address.
    """
    position = text.lower().find(address.lower())
    if position < 0:
        return ""
    line_start = text.rfind("\n", 0, position) + 1
    lines: list[str] = []
    for line in text[line_start:].split("\n"):
        stripped = line.strip()
        if not stripped:
            if lines:
                break
            continue
        if lines:
            other = _ADDRESS_LINE_RE.match(stripped)
            if other is not None and address.lower() not in other.group(0).lower():
                break
        lines.append(stripped)
        if len(lines) >= _MAX_DIAGNOSTIC_LINES:
            break
    return " ".join(lines)[:_MAX_DIAGNOSTIC_CHARS]
