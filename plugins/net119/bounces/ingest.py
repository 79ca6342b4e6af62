"""Record the messages of the bounce mailbox and apply them to the reminders.

For each message that a ``BounceSource`` yields:

1. When the message is recorded already under its key, acknowledge it
   again and do nothing else. A copy of a recorded message under another key
   (see ``content_digest``) is recorded as ``ignored`` with a link to the
   first one, without effect. When a message with other content is
   recorded under the key (a new IMAP mailbox that reuses UIDVALIDITY and
   UID values), the key gets the suffix ``#<digest prefix>`` and the message
   is processed.
2. Parse it. An oversized or unparseable message is quarantined.
3. Correlate it with a reminder: by the VERP token of the return path, else
   by the returned Message-ID. A reminder found so is the one the whole
   message reports on, whatever address a recipient result names, because a
   forwarding address may bounce under a name we never mailed. Without one,
   each recipient result is correlated on its own with the latest reminder
   sent to its address (Original-Recipient first) within
   ``match_window_days`` before the original was sent, or before the bounce
   arrived when the original's Date is not returned. This fallback leaves
   every result unmatched when the message carries a VERP token that matches
   no reminder or names more than ``MAX_RECIPIENT_TIME_FAILURES`` failed
   recipients, because anyone can mail a forged DSN naming a user's address
   to the bounce address.
4. In one transaction: record the message and one row per recipient result,
   mark the reminder of each final failure ``undeliverable`` (never a
   confirmed one), re-evaluate the lapse reason of the users concerned, and
   commit.
5. Only then acknowledge the message at the source.

A crash between the commit and the acknowledgement is harmless: the next run
finds the key in step 1. Only the bounce's own reminder changes, so an old
backlog cannot make a user undeliverable whose later reminder went through,
and ingestion never lapses anyone: it only changes the reason of users who
are lapsed already. Logs carry message and reminder ids and counts, never
addresses.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields
from email.parser import BytesHeaderParser
from email.policy import compat32
from typing import TYPE_CHECKING, Any, Literal

import psycopg2
from psycopg2.extras import execute_values

from net119 import sqlfiles, transitions
from net119.bounces.headers import DEFAULT_VERP_PREFIX, parse_date
from net119.bounces.model import (
    MAX_BOUNCE_BYTES,
    BounceKind,
    BounceReport,
    BounceTooLarge,
    QuarantineReason,
    RecipientResult,
)
from net119.bounces.parse import parse_bounce
from net119.bounces.sources import BounceSource, BounceSourceError, RawMessage

if TYPE_CHECKING:
    from psycopg2.extensions import connection as Connection
    from psycopg2.extensions import cursor as Cursor

log = logging.getLogger(__name__)

CorrelationMethod = Literal["verp", "message_id", "recipient_time"]
Effect = Literal[
    "marked_undeliverable",
    "already_undeliverable",
    "kept_confirmed",
    "kept_delivered",
    "none",
]

#: Upper bound of ``keep_raw_bytes``, the size that the table's check allows.
MAX_KEEP_RAW_BYTES = 4 * 1024 * 1024
# Headers beyond this many bytes are not read for the bounce's arrival time.
_HEADER_SCAN_BYTES = 256 * 1024
# Maximum characters stored per text field; the parser cuts diagnostics shorter.
_MAX_FIELD_CHARS = 2000
# Outcomes of a reminder that a final failure turns into 'undeliverable'.
_MARKABLE_OUTCOMES = frozenset({"sent", "sending", "failed"})
# Advisory lock class of bounce ingestion; "B119" in ASCII.
_ADVISORY_LOCK_CLASS = 0x42313139
#: Maximum final failures in a bounce that is still correlated by recipient
#: and time. A real bounce of one reminder names one or a few recipients.
MAX_RECIPIENT_TIME_FAILURES = 5


@dataclass(frozen=True)
class IngestSettings:
    """Limits and windows of bounce ingestion.

    ``from_env`` reads ``NET119_BOUNCE_MATCH_DAYS``,
    ``NET119_BOUNCE_MAX_BYTES`` and ``NET119_BOUNCE_KEEP_RAW_BYTES``.
    """

    #: Days before the bounce in which a reminder to the same address counts
    #: as the bounced one, when neither VERP token nor Message-ID matches.
    #: Postfix (maximal_queue_lifetime) and Sendmail (Timeout.queuereturn)
    #: give up after five days by default and then send the failure DSN.
    match_window_days: int = 7
    #: Reminders recorded up to this long after the reference time still
    #: match: ``sent_at`` is written after the whole SMTP batch, while the
    #: Date header is written before it, and clocks of mail servers differ.
    send_time_slack: dt.timedelta = dt.timedelta(hours=1)
    #: Larger messages are quarantined as oversized without parsing.
    max_bounce_bytes: int = MAX_BOUNCE_BYTES
    #: Bytes of a raw message kept for operators; longer ones are cut.
    keep_raw_bytes: int = 256 * 1024
    #: Local part before ``+TOKEN`` in the VERP return path.
    verp_prefix: str = DEFAULT_VERP_PREFIX

    def __post_init__(self) -> None:
        if self.match_window_days < 1:
            raise ValueError(
                f"invalid match_window_days {self.match_window_days}: use 1 or more"
            )
        if self.max_bounce_bytes < 1:
            raise ValueError(
                f"invalid max_bounce_bytes {self.max_bounce_bytes}: use 1 or more"
            )
        if not 0 <= self.keep_raw_bytes <= MAX_KEEP_RAW_BYTES:
            raise ValueError(
                f"invalid keep_raw_bytes {self.keep_raw_bytes}: use 0 to "
                f"{MAX_KEEP_RAW_BYTES}"
            )

    @classmethod
    def from_env(
        cls, lookup: Callable[[str], str | None] | None = None
    ) -> IngestSettings:
        """Build settings from ``NET119_BOUNCE_*`` variables, or ``lookup(name)``.

        Raises ``ValueError`` naming the variable when a value is not a
        valid whole number.
        """
        get = lookup or os.environ.get
        defaults = cls()

        def whole_number(name: str, default: int) -> int:
            raw = get(name)
            if raw is None or raw.strip() == "":
                return default
            try:
                return int(raw)
            except ValueError:
                raise ValueError(
                    f"invalid {name}={raw!r}: expected a whole number"
                ) from None

        return cls(
            match_window_days=whole_number(
                "NET119_BOUNCE_MATCH_DAYS", defaults.match_window_days
            ),
            max_bounce_bytes=whole_number(
                "NET119_BOUNCE_MAX_BYTES", defaults.max_bounce_bytes
            ),
            keep_raw_bytes=whole_number(
                "NET119_BOUNCE_KEEP_RAW_BYTES", defaults.keep_raw_bytes
            ),
        )


@dataclass
class IngestCounts:
    """Counts of one ingestion run, safe to log and to store as XCom.

    Each message read counts in exactly one of the first eight fields:

    - ``auto_reply``, ``delayed``: by the parser's verdict, matched or not;
    - ``matched_failure``: a final failure matched a reminder;
    - ``matched_not_failure``: results matched a reminder, none failed;
    - ``unmatched``: nothing matched, and the message may report a failure;
    - ``ignored``: nothing matched, and nothing failed;
    - ``quarantined``, ``already_seen``.

    ``errors`` counts messages left in the mailbox after a database error,
    ``ack_failures`` recorded messages whose acknowledgement failed, and
    ``source_errors`` failures to open or read the mailbox.
    """

    matched_failure: int = 0
    matched_not_failure: int = 0
    auto_reply: int = 0
    delayed: int = 0
    unmatched: int = 0
    ignored: int = 0
    quarantined: int = 0
    already_seen: int = 0
    reminders_undeliverable: int = 0
    lapse_reasons_changed: int = 0
    errors: int = 0
    ack_failures: int = 0
    source_errors: int = 0

    def as_dict(self) -> dict[str, int]:
        return {item.name: getattr(self, item.name) for item in fields(self)}


@dataclass(frozen=True, slots=True)
class ReminderRef:
    """The columns of a reminder that correlation and its effect need."""

    id: int
    user_id: int
    recipient: str | None
    outcome: str


@dataclass(frozen=True, slots=True)
class Correlation:
    """A reminder found for a bounce, and how it was found."""

    reminder: ReminderRef
    method: CorrelationMethod


@dataclass(frozen=True, slots=True)
class _Recorded:
    """Result of recording one message: its count field and its effects."""

    bucket: str
    bounce_message_id: int | None = None
    reminders_undeliverable: int = 0
    lapse_reasons_changed: int = 0


def ingest(
    conn: Connection,
    source: BounceSource,
    *,
    now: dt.datetime,
    run_id: str | None = None,
    settings: IngestSettings | None = None,
) -> IngestCounts:
    """Record every message of ``source`` not recorded yet and apply its effect.

    ``now`` is the run's reference time. It dates the status events, and it
    is the arrival time of a bounce without a readable date. A database error
    on one message rolls it back and leaves it in the mailbox, counted in
    ``errors``, unless the connection itself failed, which raises. A source
    that fails while reading is logged and counted in ``source_errors``, and
    the messages recorded before stay recorded.
    """
    settings = settings or IngestSettings.from_env()
    counts = IngestCounts()
    try:
        for message in source.messages():
            recorded = _ingest_message(conn, message, now, run_id, settings)
            if recorded is None:
                counts.errors += 1
                continue
            setattr(counts, recorded.bucket, getattr(counts, recorded.bucket) + 1)
            counts.reminders_undeliverable += recorded.reminders_undeliverable
            counts.lapse_reasons_changed += recorded.lapse_reasons_changed
            if not _acknowledge(source, message.key):
                counts.ack_failures += 1
    except BounceSourceError as exc:
        counts.source_errors += 1
        log.error(
            "Reading the bounce mailbox failed; messages not yet read stay there "
            "for the next run: %s",
            exc,
        )
    log.info("Bounce ingestion: %s", counts.as_dict())
    return counts


def _acknowledge(source: BounceSource, key: str) -> bool:
    try:
        source.acknowledge(key)
    except BounceSourceError as exc:
        # The message is recorded, so the next run only acknowledges it.
        log.warning(
            "Acknowledging bounce message %s failed; the next run retries: %s",
            key,
            exc,
        )
        return False
    return True


def _ingest_message(
    conn: Connection,
    message: RawMessage,
    now: dt.datetime,
    run_id: str | None,
    settings: IngestSettings,
) -> _Recorded | None:
    """Record one message in its own transaction; ``None`` after a database error."""
    digest = content_digest(message.raw)
    try:
        with conn.cursor() as cur:
            lookup = _look_up(cur, message.key, digest)
        conn.rollback()
        if lookup.same_message:
            return _Recorded("already_seen")
        report: BounceReport | None = None
        quarantine: _Quarantine | None = None
        if lookup.content_id is None:
            # Parsing happens outside any transaction, so no lock is held
            # meanwhile. A copy of a recorded message is not parsed at all.
            report, quarantine = _parse(message.raw, settings)
        with conn.cursor() as cur:
            recorded = _record(
                cur, conn, message, digest, report, quarantine, now, run_id, settings
            )
        conn.commit()
    except psycopg2.Error as exc:
        if conn.closed:
            raise
        conn.rollback()
        # Only the primary message is logged: the DETAIL of a constraint
        # violation quotes row values, which may be addresses.
        log.error(
            "Recording bounce message %s failed (%s, SQLSTATE %s: %s); it stays "
            "in the mailbox for the next run",
            message.key,
            type(exc).__name__,
            exc.pgcode,
            exc.diag.message_primary,
        )
        return None
    return recorded


def content_digest(raw: bytes) -> bytes:
    """Return the SHA-256 of a message with CRLF line ends read as LF.

    IMAP servers return CRLF and Maildir files usually hold LF, so the same
    bounce read from either has one digest.
    """
    return hashlib.sha256(raw.replace(b"\r\n", b"\n")).digest()


@dataclass(frozen=True, slots=True)
class _Lookup:
    """Existing records of one message in the bounce tables."""

    #: Key to record the message under: the source's key, or the alternate
    #: key when a message with other content is recorded under the source's key.
    key: str
    #: A recorded message with the same content digest.
    content_id: int | None
    #: The message itself is recorded under ``key``.
    same_message: bool


def _look_up(cur: Cursor, key: str, digest: bytes) -> _Lookup:
    alternate_key = f"{key}#{digest.hex()[:16]}"
    cur.execute(
        sqlfiles.load("bounce_find_recorded"),
        {
            "source_key": key,
            "alternate_key": alternate_key,
            "content_sha256": psycopg2.Binary(digest),
        },
    )
    row = cur.fetchone()
    assert row is not None  # the query always returns one row
    content_id, same_key, key_taken = row
    return _Lookup(
        key=alternate_key if key_taken else key,
        content_id=content_id,
        same_message=bool(same_key),
    )


@dataclass(frozen=True, slots=True)
class _Quarantine:
    reason: QuarantineReason
    detail: str


def _parse(
    raw: bytes, settings: IngestSettings
) -> tuple[BounceReport | None, _Quarantine | None]:
    try:
        report = parse_bounce(
            raw, max_bytes=settings.max_bounce_bytes, verp_prefix=settings.verp_prefix
        )
    except BounceTooLarge as exc:
        return None, _Quarantine(exc.reason, str(exc))
    if report.quarantine_reason is not None:
        detail = (
            "no mail message, or the parser failed on it (see the task log); "
            "read it by hand"
        )
        return report, _Quarantine(report.quarantine_reason, detail)
    return report, None


def _record(
    cur: Cursor,
    conn: Connection,
    message: RawMessage,
    digest: bytes,
    report: BounceReport | None,
    quarantine: _Quarantine | None,
    now: dt.datetime,
    run_id: str | None,
    settings: IngestSettings,
) -> _Recorded:
    # Serialise concurrent ingestions of the same bytes, then look again: the
    # other one may have committed since the first look.
    cur.execute(
        "SELECT pg_advisory_xact_lock(%s, hashtext(%s))",
        (_ADVISORY_LOCK_CLASS, digest.hex()),
    )
    lookup = _look_up(cur, message.key, digest)
    if lookup.same_message:
        return _Recorded("already_seen")
    if lookup.key != message.key:
        log.warning(
            "Source key %s is recorded for a message with other content; this "
            "message is recorded under %s",
            message.key,
            lookup.key,
        )
    received_at = arrival_time(message.raw, default=now)
    row = _MessageRow(
        source_key=lookup.key,
        content_sha256=digest,
        received_at=received_at,
        run_id=run_id,
        size_bytes=len(message.raw),
    )

    if lookup.content_id is not None:
        row.outcome = "ignored"
        row.duplicate_of = lookup.content_id
        if report is not None:
            row.set_report(report)
        message_id = _insert_message(cur, row)
        log.info(
            "Bounce message %d (%s) is a copy of message %d; no effect",
            message_id,
            message.key,
            lookup.content_id,
        )
        return _Recorded("already_seen", message_id)

    if report is None and quarantine is None:
        # The first look found a copy that is gone now, which only a row
        # deleted by hand causes, so the message was not parsed yet.
        report, quarantine = _parse(message.raw, settings)

    if quarantine is not None:
        row.outcome = "quarantined"
        row.quarantine_reason = quarantine.reason.value
        row.quarantine_detail = quarantine.detail
        if report is not None:
            row.set_report(report)
        row.keep_raw(message.raw, settings.keep_raw_bytes)
        message_id = _insert_message(cur, row)
        log.warning(
            "Bounce message %d (%s, %d bytes) quarantined: %s",
            message_id,
            message.key,
            len(message.raw),
            quarantine.reason.value,
        )
        return _Recorded("quarantined", message_id)

    assert report is not None  # _parse returns a report unless it quarantines
    return _record_report(cur, conn, message, row, report, now, run_id, settings)


def _record_report(
    cur: Cursor,
    conn: Connection,
    message: RawMessage,
    row: _MessageRow,
    report: BounceReport,
    now: dt.datetime,
    run_id: str | None,
    settings: IngestSettings,
) -> _Recorded:
    row.set_report(report)
    message_link = correlate_message(cur, report)
    reference = report.original_sent_at or row.received_at
    links: list[Correlation | None]
    if message_link is not None:
        links = [message_link] * len(report.recipients)
    elif _allows_recipient_time(report, message.key):
        links = [
            correlate_recipient(cur, result, reference, settings)
            for result in report.recipients
        ]
    else:
        links = [None] * len(report.recipients)
    if message_link is not None:
        row.reminder_id = message_link.reminder.id
        row.correlated_by = message_link.method

    effects, user_ids = _apply_effects(cur, report.recipients, links, row.received_at)
    linked = [link is not None for link in links]
    failed_and_linked = any(
        result.is_final_failure and link is not None
        for result, link in zip(report.recipients, links, strict=True)
    )
    failed_and_unlinked = any(
        result.is_final_failure and link is None
        for result, link in zip(report.recipients, links, strict=True)
    )

    if any(linked):
        row.outcome = "matched"
    elif _reports_no_failure(report):
        row.outcome = "ignored"
    else:
        row.outcome = "unmatched"
    if (
        row.outcome == "unmatched"
        or report.kind is BounceKind.UNRECOGNISED
        or failed_and_unlinked
    ):
        row.keep_raw(message.raw, settings.keep_raw_bytes)

    message_id = _insert_message(cur, row)
    _insert_results(cur, message_id, report.recipients, links, effects)
    changed = transitions.reevaluate_lapse_reasons(
        conn,
        now=now,
        run_id=run_id,
        user_ids=sorted(user_ids),
        cause="bounce",
        commit=False,
    )

    marked = effects.count("marked_undeliverable")
    # DEBUG, because a backlog has one line per message; each change of a
    # reminder is logged at INFO in _apply_effects.
    log.debug(
        "Bounce message %d (%s): kind %s, outcome %s, %d results, %d linked, "
        "%d reminders marked undeliverable",
        message_id,
        message.key,
        report.kind.value,
        row.outcome,
        len(links),
        sum(linked),
        marked,
    )
    if report.kind is BounceKind.AUTO_REPLY:
        bucket = "auto_reply"
    elif report.kind is BounceKind.DELAYED:
        bucket = "delayed"
    elif failed_and_linked:
        bucket = "matched_failure"
    elif any(linked):
        bucket = "matched_not_failure"
    else:
        bucket = row.outcome
    return _Recorded(
        bucket,
        message_id,
        reminders_undeliverable=marked,
        lapse_reasons_changed=sum(changed.values()),
    )


def _allows_recipient_time(report: BounceReport, key: str) -> bool:
    """Return whether a message that named no reminder may match by recipient.

    A VERP token of our form that matches no reminder, or more than
    ``MAX_RECIPIENT_TIME_FAILURES`` failed recipients, is a sign of a forged
    or unrelated DSN, so such a message is left unmatched. A message without
    a token (a forwarded or rewritten return path) may match.
    """
    if report.verp_token:
        log.warning(
            "Bounce message %s has a VERP token that matches no reminder; its "
            "recipients are left unmatched",
            key,
        )
        return False
    failures = sum(1 for result in report.recipients if result.is_final_failure)
    if failures > MAX_RECIPIENT_TIME_FAILURES:
        log.warning(
            "Bounce message %s names %d failed recipients, more than %d; they "
            "are left unmatched",
            key,
            failures,
            MAX_RECIPIENT_TIME_FAILURES,
        )
        return False
    return True


def _reports_no_failure(report: BounceReport) -> bool:
    """Return whether an uncorrelated message can be dropped from operators' view.

    Automatic replies, delays and delivery reports fail nothing. A report
    without recipients or an unrecognised message may hide a failure.
    """
    if report.kind is BounceKind.UNRECOGNISED or not report.recipients:
        return False
    return not report.has_final_failure


# --- Correlation ------------------------------------------------------------


def _reminder_from(row: tuple[Any, ...] | None) -> ReminderRef | None:
    if row is None:
        return None
    return ReminderRef(id=row[0], user_id=row[1], recipient=row[2], outcome=row[3])


def correlate_message(cur: Cursor, report: BounceReport) -> Correlation | None:
    """Find the reminder that the whole message reports on.

    The VERP token comes first, then the returned Message-ID. Returns
    ``None`` when neither is present or neither matches a reminder.
    """
    if report.verp_token:
        tokens = sorted({report.verp_token, report.verp_token.lower()})
        cur.execute(sqlfiles.load("bounce_find_reminder_by_verp"), {"tokens": tokens})
        reminder = _reminder_from(cur.fetchone())
        if reminder is not None:
            return Correlation(reminder, "verp")
    if report.message_id:
        cur.execute(
            sqlfiles.load("bounce_find_reminder_by_message_id"),
            {"message_id": report.message_id},
        )
        reminder = _reminder_from(cur.fetchone())
        if reminder is not None:
            return Correlation(reminder, "message_id")
    return None


def correlate_recipient(
    cur: Cursor,
    result: RecipientResult,
    reference: dt.datetime,
    settings: IngestSettings,
) -> Correlation | None:
    """Find the latest reminder sent to the result's address before ``reference``.

    The Original-Recipient (the address as we gave it) is tried before the
    Final-Recipient. The window is ``match_window_days`` before
    ``reference`` up to ``send_time_slack`` after it.
    """
    addresses = [
        address
        for address in dict.fromkeys((result.original_recipient, result.recipient))
        if address
    ]
    for address in addresses:
        cur.execute(
            sqlfiles.load("bounce_find_reminder_by_recipient"),
            {
                "address": address,
                "window_start": reference
                - dt.timedelta(days=settings.match_window_days),
                "window_end": reference + settings.send_time_slack,
            },
        )
        reminder = _reminder_from(cur.fetchone())
        if reminder is not None:
            return Correlation(reminder, "recipient_time")
    return None


# --- Effects ------------------------------------------------------------------


def _same_address(left: str | None, right: str | None) -> bool:
    if not left or not right:
        return False
    return left.lower() == right.lower()


def _delivered_reminders(
    results: Iterable[RecipientResult], links: Iterable[Correlation | None]
) -> set[int]:
    """Return the reminders whose own address the message reports as delivered."""
    delivered: set[int] = set()
    for result, link in zip(results, links, strict=True):
        if link is None or result.action != "delivered":
            continue
        own = link.reminder.recipient
        if _same_address(result.recipient, own) or _same_address(
            result.original_recipient, own
        ):
            delivered.add(link.reminder.id)
    return delivered


def _apply_effects(
    cur: Cursor,
    results: tuple[RecipientResult, ...],
    links: list[Correlation | None],
    bounced_at: dt.datetime,
) -> tuple[list[Effect], set[int]]:
    """Apply each final failure to its reminder; return the effects and user ids.

    A reminder is locked before its outcome is read, so a renewal confirmed
    meanwhile wins. Several results of one message may name the same
    reminder; the first final failure marks it.
    """
    delivered = _delivered_reminders(results, links)
    outcomes: dict[int, str] = {}
    effects: list[Effect] = []
    user_ids: set[int] = set()
    for result, link in zip(results, links, strict=True):
        if link is None or not result.is_final_failure:
            effects.append("none")
            continue
        reminder = link.reminder
        if reminder.id not in outcomes:
            cur.execute(
                sqlfiles.load("bounce_lock_reminder"), {"reminder_id": reminder.id}
            )
            locked = cur.fetchone()
            outcomes[reminder.id] = locked[0] if locked is not None else "missing"
        outcome = outcomes[reminder.id]

        effect: Effect
        if outcome == "confirmed":
            effect = "kept_confirmed"
        elif outcome == "undeliverable":
            effect = "already_undeliverable"
        elif reminder.id in delivered:
            effect = "kept_delivered"
        elif outcome in _MARKABLE_OUTCOMES:
            user_id = _mark_undeliverable(cur, reminder.id, result, bounced_at)
            if user_id is None:
                effect = "none"
            else:
                effect = "marked_undeliverable"
                outcomes[reminder.id] = "undeliverable"
                user_ids.add(user_id)
                log.info(
                    "Reminder %d of user %d marked undeliverable by a bounce "
                    "(%s, correlated by %s)",
                    reminder.id,
                    user_id,
                    result.category.value if result.category else "no category",
                    link.method,
                )
        else:
            # 'skipped' reminders were never sent; a bounce cannot concern them.
            effect = "none"
        effects.append(effect)
    return effects, user_ids


def _mark_undeliverable(
    cur: Cursor, reminder_id: int, result: RecipientResult, bounced_at: dt.datetime
) -> int | None:
    status = result.status or "5.0.0"
    cur.execute(
        sqlfiles.load("bounce_mark_undeliverable"),
        {
            "reminder_id": reminder_id,
            "status_code": _db_text(status),
            "smtp_code": result.smtp_code,
            "category": result.category.value if result.category else "other",
            "diagnostic": _db_text(result.diagnostic),
            "bounced_at": bounced_at,
            "failure_reason": f"returned as undeliverable by a bounce ({status})",
        },
    )
    row = cur.fetchone()
    return int(row[0]) if row is not None else None


# --- Rows -------------------------------------------------------------------


@dataclass
class _MessageRow:
    """The columns of one ``net119.bounce_messages`` row."""

    source_key: str
    content_sha256: bytes
    received_at: dt.datetime
    run_id: str | None
    size_bytes: int
    kind: str | None = None
    outcome: str = "unmatched"
    quarantine_reason: str | None = None
    quarantine_detail: str | None = None
    duplicate_of: int | None = None
    verp_token: str | None = None
    original_message_id: str | None = None
    original_sent_at: dt.datetime | None = None
    reporting_mta: str | None = None
    detected_by: tuple[str, ...] = ()
    reminder_id: int | None = None
    correlated_by: str | None = None
    raw: bytes | None = None
    raw_truncated: bool = False

    def set_report(self, report: BounceReport) -> None:
        self.kind = report.kind.value
        self.verp_token = _db_text(report.verp_token)
        self.original_message_id = _db_text(report.message_id)
        self.original_sent_at = report.original_sent_at
        self.reporting_mta = _db_text(report.reporting_mta)
        self.detected_by = report.detected_by

    def keep_raw(self, raw: bytes, limit: int) -> None:
        self.raw = raw[:limit]
        self.raw_truncated = len(raw) > limit

    def parameters(self) -> Mapping[str, Any]:
        values = {item.name: getattr(self, item.name) for item in fields(self)}
        values["detected_by"] = list(self.detected_by)
        values["raw"] = psycopg2.Binary(self.raw) if self.raw is not None else None
        values["content_sha256"] = psycopg2.Binary(self.content_sha256)
        return values


def _insert_message(cur: Cursor, row: _MessageRow) -> int:
    cur.execute(sqlfiles.load("bounce_insert_message"), row.parameters())
    inserted = cur.fetchone()
    assert inserted is not None  # INSERT ... RETURNING always returns the row
    return int(inserted[0])


def _insert_results(
    cur: Cursor,
    message_id: int,
    results: tuple[RecipientResult, ...],
    links: list[Correlation | None],
    effects: list[Effect],
) -> None:
    if not results:
        return
    rows = [
        (
            message_id,
            position,
            link.reminder.id if link else None,
            link.method if link else None,
            _db_text(result.recipient),
            _db_text(result.original_recipient),
            _db_text(result.action),
            _db_text(result.status),
            result.smtp_code,
            _db_text(result.diagnostic),
            result.category.value if result.category else None,
            result.is_final_failure,
            result.carrier,
            effect,
        )
        for position, (result, link, effect) in enumerate(
            zip(results, links, effects, strict=True)
        )
    ]
    execute_values(cur, sqlfiles.load("bounce_insert_results"), rows)


def _db_text(value: str | None) -> str | None:
    """Return ``value`` in a form PostgreSQL text accepts, cut to a sane length.

    Bounces are untrusted: NUL characters and lone surrogates from undecodable
    bytes are dropped or replaced, since PostgreSQL rejects both.
    """
    if value is None:
        return None
    cleaned = value.replace("\x00", "").encode("utf-8", errors="replace").decode()
    return cleaned[:_MAX_FIELD_CHARS]


# --- Arrival time ----------------------------------------------------------------


def arrival_time(raw: bytes, *, default: dt.datetime) -> dt.datetime:
    """Return when a bounce reached our mail server.

    Our own server wrote the newest Received header (the first one), so its
    date is used first. Next comes the Date header, which the remote side
    wrote, and last ``default``.
    """
    headers = BytesHeaderParser(policy=compat32).parsebytes(
        raw[:_HEADER_SCAN_BYTES], headersonly=True
    )
    received = headers.get("Received")
    if received is not None:
        _trace, separator, stamp = str(received).rpartition(";")
        parsed = parse_date(stamp) if separator else None
        if parsed is not None:
            return parsed
    dated = parse_date(str(headers.get("Date") or ""))
    return dated if dated is not None else default
