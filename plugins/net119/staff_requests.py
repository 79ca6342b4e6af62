"""Check what station staff enter in the manual-run forms, before anything changes.

The manual resend and the recorded renewal share these checks. Each check
appends a problem to a list instead of raising, so that one error message
names every bad value at once. ``RequestValidationError`` carries that list.
Messages name the bad values by user id and never show a name or an address.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from net119 import sqlfiles

if TYPE_CHECKING:
    from psycopg2.extensions import connection as Connection

# The run's summary lists every id, and it is stored as XCom and shown in the
# UI; larger sets belong to the daily pipeline.
MAX_USERS = 1000
MIN_TEXT_LENGTH = 5
MAX_TEXT_LENGTH = 500
# Largest value of the bigint column net119.users.id.
_MAX_USER_ID = 2**63 - 1


class RequestValidationError(ValueError):
    """A manual-run request was rejected before anything was changed or sent."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__(
            "invalid request, nothing was changed or sent: " + "; ".join(self.problems)
        )


def parse_user_ids(value: object, problems: list[str]) -> tuple[list[int], list[int]]:
    """Return the distinct user ids in entry order, and the ids given twice.

    An empty list is a problem, never a request for every user. Booleans,
    floats, strings and ids outside the bigint range are problems, named with
    their values.
    """
    if not isinstance(value, list):
        problems.append(
            "user_ids (利用者ID) must be a list such as [1024, 2048], "
            f"got {_describe(value)}"
        )
        return [], []
    if not value:
        problems.append(
            "user_ids (利用者ID) is empty: list at least one user id "
            "(an empty list never means every user)"
        )
        return [], []

    invalid = [
        item
        for item in value
        if isinstance(item, bool)
        or not isinstance(item, int)
        or not 1 <= item <= _MAX_USER_ID
    ]
    if invalid:
        shown = ", ".join(_describe(item) for item in invalid[:20])
        more = f" and {len(invalid) - 20} more" if len(invalid) > 20 else ""
        problems.append(
            f"user_ids (利用者ID) contains values that are not user ids: {shown}{more} "
            "(expected positive integers without quotes)"
        )
        return [], []

    distinct = list(dict.fromkeys(value))
    duplicates = sorted({item for item in value if value.count(item) > 1})
    if len(distinct) > MAX_USERS:
        problems.append(
            f"user_ids (利用者ID) lists {len(distinct)} users; "
            f"the maximum per run is {MAX_USERS}"
        )
        return [], []
    return distinct, duplicates


def parse_text(value: object, field: str, label: str, problems: list[str]) -> str:
    """Return a required free-text field without surrounding spaces."""
    text = value.strip() if isinstance(value, str) else ""
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


def _describe(value: object) -> str:
    """Describe a bad value for an error message without echoing free text.

    Free text may be a name or an address typed into the wrong field, so a
    string is shown only when it consists of digits.
    """
    if value is None:
        return "nothing"
    if isinstance(value, str):
        if value.strip().isdigit():
            return repr(value)
        return f"a text of {len(value)} characters"
    if isinstance(value, (bool, int, float)):
        return repr(value)
    return f"a value of type {type(value).__name__}"
