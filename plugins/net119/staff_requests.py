"""Check what station staff enter in the manual-run forms, before anything changes.

The manual resend and the recorded renewal share these checks. Each check
appends a problem to a list instead of raising, so that one error message
names every bad value at once. ``RequestValidationError`` carries that list.
Messages name the bad values by user id and never show a name or an address.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections import Counter
from typing import TYPE_CHECKING

from net119 import sqlfiles

if TYPE_CHECKING:
    from psycopg2.extensions import connection as Connection

log = logging.getLogger(__name__)

# Maximum users per manual run. The summary lists every id and is stored as
# XCom and shown in the UI, so a run stays small. NOTE: 1000 is a chosen
# bound, not a measured limit of the SMTP server or the database.
MAX_USERS = 1000
MIN_TEXT_LENGTH = 5
MAX_TEXT_LENGTH = 500
# Largest value of the bigint column net119.users.id, and its number of digits.
# Longer digit strings are rejected before int(), which raises ValueError on
# more than 4300 digits (sys.int_info.default_max_str_digits, Python 3.11+).
_MAX_USER_ID = 2**63 - 1
_MAX_USER_ID_DIGITS = len(str(_MAX_USER_ID))
# Digits of a too-long id shown in an error message.
_SHOWN_ID_DIGITS = 20
# Zero-width characters that str.strip() keeps but that show nothing, so a
# text made only of them and whitespace counts as empty.
_ZERO_WIDTH = "\u200b\u200c\u200d\u2060\ufeff"
_EDGE_BLANKS = re.compile(rf"^[\s{_ZERO_WIDTH}]+|[\s{_ZERO_WIDTH}]+$")
# Separators between ids in one text item, after NFKC normalisation (which
# turns the full-width comma and digits into ASCII).
_ID_SEPARATORS = re.compile(r"[\s,、]+")
_SHOWABLE_TEXT = re.compile(r"[A-Za-z0-9._-]+")

# JSON Schema of one user_ids item for the trigger forms. An item schema
# without a "type" makes the Airflow 3.3 form show a text box with one item
# per line. With "type": "integer" it shows a JSON editor that reformats the
# list after each keystroke that leaves valid JSON and moves the cursor to the
# end, so ids typed between the brackets land outside them.
USER_IDS_ITEM_SCHEMA: dict[str, object] = {
    "anyOf": [
        {"type": "integer", "minimum": 1},
        {"type": "string", "pattern": r"^[\s0-9０-９,、，]*$"},
    ]
}


class RequestValidationError(ValueError):
    """A manual-run request was rejected before anything was changed or sent."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__(
            "invalid request, nothing was changed or sent: " + "; ".join(self.problems)
        )


def parse_user_ids(value: object, problems: list[str]) -> tuple[list[int], list[int]]:
    """Return the distinct user ids in entry order, and the ids given more than once.

    Items are integers (REST API) or text (the form's text box, one line per
    item), and a text item may hold several ids separated by commas, 「、」 or
    spaces, in half-width or full-width digits. Blank lines are ignored. A list
    without any id is a problem, never a request for every user. Anything else,
    and ids outside 1 to the bigint maximum, are problems named in the message.
    """
    if not isinstance(value, list):
        problems.append(
            "user_ids (利用者ID) must be a list such as [1024, 2048], "
            f"got {_describe(value)}"
        )
        return [], []

    ids: list[int] = []
    invalid: list[str] = []
    for item in value:
        if isinstance(item, bool) or not isinstance(item, (int, str)):
            invalid.append(_describe(item))
        elif isinstance(item, int) and item.bit_length() > 64:
            # Out of the bigint range, and repr() of a large enough int raises.
            invalid.append(f"a whole number of {item.bit_length()} bits")
        elif isinstance(item, int):
            ids.append(item)
        else:
            for token in _ID_SEPARATORS.split(unicodedata.normalize("NFKC", item)):
                if token.isascii() and token.isdigit():
                    if len(token) > _MAX_USER_ID_DIGITS:
                        invalid.append(_describe_long_id(token))
                    else:
                        ids.append(int(token))
                elif token:
                    invalid.append(_describe(token))
    invalid.extend(repr(user_id) for user_id in ids if not 1 <= user_id <= _MAX_USER_ID)
    if invalid:
        shown = ", ".join(invalid[:20])
        more = f" and {len(invalid) - 20} more" if len(invalid) > 20 else ""
        problems.append(
            f"user_ids (利用者ID) contains values that are not user ids: {shown}{more} "
            "(expected positive whole numbers)"
        )
        return [], []
    if not ids:
        problems.append(
            "user_ids (利用者ID) is empty: list at least one user id "
            "(an empty list never means every user)"
        )
        return [], []

    distinct = list(dict.fromkeys(ids))
    counts = Counter(ids)
    duplicates = sorted(user_id for user_id, count in counts.items() if count > 1)
    if len(distinct) > MAX_USERS:
        problems.append(
            f"user_ids (利用者ID) lists {len(distinct)} users; "
            f"the maximum per run is {MAX_USERS}"
        )
        return [], []
    return distinct, duplicates


def parse_text(value: object, field: str, label: str, problems: list[str]) -> str:
    """Return a required free-text field without surrounding spaces.

    Zero-width characters (U+200B, U+200C, U+200D, U+2060, U+FEFF) count as
    spaces, so a text made only of them is missing.
    """
    text = _EDGE_BLANKS.sub("", value) if isinstance(value, str) else ""
    if not isinstance(value, str) or len(text) < MIN_TEXT_LENGTH:
        problems.append(
            f"{field} ({label}) is missing or shorter than {MIN_TEXT_LENGTH} characters"
        )
    elif len(text) > MAX_TEXT_LENGTH:
        problems.append(
            f"{field} ({label}) is {len(text)} characters long; "
            f"the maximum is {MAX_TEXT_LENGTH}"
        )
    return text


def parse_flag(value: object, field: str, problems: list[str]) -> bool:
    """Return a boolean field; a missing value is false."""
    if value is None:
        return False
    if not isinstance(value, bool):
        problems.append(f"{field} must be true or false, got {_describe(value)}")
        return False
    return value


def find_unknown_users(conn: Connection, user_ids: list[int]) -> list[int]:
    """Return the ids in ``user_ids`` that no user has, in ascending order."""
    if not user_ids:
        return []
    with conn.cursor() as cur:
        cur.execute(sqlfiles.load("select_existing_user_ids"), {"user_ids": user_ids})
        existing = {row[0] for row in cur.fetchall()}
    return sorted(set(user_ids) - existing)


def unknown_users_problem(unknown: list[int]) -> str:
    return "user_ids (利用者ID) has no user with id " + ", ".join(
        str(i) for i in unknown
    )


def raise_for_problems(
    conn: Connection, user_ids: list[int], problems: list[str], request_kind: str
) -> None:
    """Add the unknown ids of ``user_ids`` to ``problems``, then raise if any.

    Raises ``RequestValidationError`` listing every problem at once, after
    rolling back the lookup, so a rejected request changes nothing.
    """
    unknown = find_unknown_users(conn, user_ids)
    conn.rollback()
    if unknown:
        problems.append(unknown_users_problem(unknown))
    if problems:
        log.warning(
            "%s request rejected with %d problems; nothing changed",
            request_kind,
            len(problems),
        )
        raise RequestValidationError(problems)


def requester_name(dag_run: object | None) -> str:
    """Return the Airflow user who triggered ``dag_run``, or a marker naming the gap.

    Airflow 3.1 and later store the user on the DAG run as
    ``triggering_user_name``: the logged-in user for the UI and the REST API,
    the operating-system user for ``airflow dags trigger``, and ``dag_test``
    for ``airflow dags test`` and ``DAG.test()``. Runs created without a user
    get the marker ``unknown (<run type> run without a triggering user)``.
    """
    name = getattr(dag_run, "triggering_user_name", None)
    if isinstance(name, str) and name.strip():
        return name.strip()
    run_type = getattr(dag_run, "run_type", None)
    kind = getattr(run_type, "value", run_type) or "unknown"
    return f"unknown ({kind} run without a triggering user)"


def _describe_long_id(token: str) -> str:
    """Describe a digit string longer than any bigint, cut to its first digits."""
    return f"'{token[:_SHOWN_ID_DIGITS]}…' ({len(token)} digits, at most {_MAX_USER_ID_DIGITS})"


def _describe(value: object) -> str:
    """Describe a bad value for an error message without echoing personal data.

    A name or an address typed into the wrong field must not reach the log. So
    text is shown only when it contains a digit and consists of ASCII letters,
    digits, dots, hyphens and underscores, as a mistyped id such as ``12a``.
    """
    if value is None:
        return "nothing"
    if isinstance(value, str):
        if _SHOWABLE_TEXT.fullmatch(value) and any(ch.isdigit() for ch in value):
            return repr(value)
        return f"a text of {len(value)} characters"
    if isinstance(value, (bool, int, float)):
        return repr(value)
    return f"a value of type {type(value).__name__}"
