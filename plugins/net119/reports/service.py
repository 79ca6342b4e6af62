"""Build and mail the station reports of one batch of stations.

For a batch of station ids and a run date:

1. find the report period of the run date; when its report is not due yet,
   do nothing;
2. claim the period's report of each station that has none sent or in
   progress, then commit;
3. record stations without a usable report address as 'no_address';
4. build the lapsed and at-risk lists of all claimed stations in one query and
   store who each report lists, then commit;
5. per station: write the CSV, render the summary and the notice letters,
   send the mail over the batch's SMTP session, and record 'sent' or
   'failed' with counts, then commit.

A rerun claims nothing that was sent, so no station gets a period's report
twice. When an unexpected error stops the batch, every claim that got no
outcome is marked 'failed' before the error propagates, so the next attempt
or run sends it instead of waiting for the claim's lease to run out. ``raise_for_problems`` then fails the task naming the stations that
operators must look at. Only station ids and counts are logged.
"""

from __future__ import annotations

import datetime as dt
import logging
import smtplib
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import psycopg2

from net119 import sqlfiles
from net119.config import Settings
from net119.mail.addresses import address_problem
from net119.mail.compose import sender_domain
from net119.reports import ledger
from net119.reports.config import ReportSettings
from net119.reports.csvfile import write_report_csv
from net119.reports.letter import NoticeLetter, letter_filename, render_notice_letter
from net119.reports.message import (
    compose_report_mail,
    csv_filename,
    report_envelope_from,
)
from net119.reports.period import ReportPeriod, report_period
from net119.reports.rows import ReportRow, build_report_rows
from net119.reports.summary import SummaryContent, count_rows, render_summary
from net119.sending import SmtpSessionFactory

if TYPE_CHECKING:
    from email.message import EmailMessage

    from psycopg2.extensions import connection as Connection

log = logging.getLogger(__name__)

# Stations named in a failure message at most; the log of the task has all.
_MAX_STATIONS_NAMED = 50


@dataclass
class BatchCounts:
    """Counts of one batch of station reports, safe to show in the UI and XCom."""

    period_key: str
    stations: int = 0
    reported: int = 0
    skipped_not_due: int = 0
    # Sent already in this period, or not a station in net119.stations.
    skipped_already_sent: int = 0
    # Claimed by another run, or by a crashed attempt whose lease still runs.
    skipped_in_progress: int = 0
    without_address: int = 0
    failed: int = 0
    letters: int = 0

    def as_dict(self) -> dict[str, object]:
        return {
            "period": self.period_key,
            "stations": self.stations,
            "reported": self.reported,
            "skipped_not_due": self.skipped_not_due,
            "skipped_already_sent": self.skipped_already_sent,
            "skipped_in_progress": self.skipped_in_progress,
            "without_address": self.without_address,
            "failed": self.failed,
            "letters": self.letters,
        }


class StationReportError(RuntimeError):
    """Some stations of a batch did not get their report, or not at every address."""

    def __init__(self, period_key: str, problems: list[ledger.ReportProblem]) -> None:
        self.period_key = period_key
        self.problems = problems
        super().__init__(_problem_message(period_key, problems))


def _problem_message(period_key: str, problems: list[ledger.ReportProblem]) -> str:
    groups: dict[str, list[str]] = {}
    for problem in problems:
        if problem.status == "no_address":
            key = "no valid report address (set stations.report_emails)"
        elif problem.status == "failed":
            key = f"send failed ({problem.failure_reason or 'unknown reason'})"
        else:
            key = "sent, but some report addresses were invalid or rejected"
        groups.setdefault(key, []).append(problem.station_id)
    parts = []
    for key, station_ids in groups.items():
        named = ", ".join(station_ids[:_MAX_STATIONS_NAMED])
        more = len(station_ids) - _MAX_STATIONS_NAMED
        suffix = f" and {more} more" if more > 0 else ""
        parts.append(f"{key}: {named}{suffix}")
    return f"station reports of period {period_key} need attention: " + "; ".join(parts)


def due_period(
    run_date: dt.date, report_settings: ReportSettings
) -> ReportPeriod | None:
    """Return the report period whose report is due on ``run_date``, if any.

    Returns ``None`` when reports are off, or before the period's due date.
    """
    if report_settings.cadence == "off":
        return None
    period = report_period(report_settings.cadence, run_date, report_settings.weekday)
    return period if period.is_due(run_date) else None


def list_report_batches(
    conn: Connection, *, run_date: dt.date, report_settings: ReportSettings
) -> list[list[str]]:
    """Return the stations whose report of the current period is due and unsent, in batches.

    Returns an empty list on a day when no report is due.
    """
    period = due_period(run_date, report_settings)
    if period is None:
        log.info(
            "No station report due on %s (cadence %s, weekday %d)",
            run_date,
            report_settings.cadence,
            report_settings.weekday,
        )
        return []
    station_ids = ledger.stations_without_sent_report(conn, period)
    size = report_settings.batch_size
    batches = [station_ids[i : i + size] for i in range(0, len(station_ids), size)]
    log.info(
        "Station reports of period %s: %d stations to report in %d batches",
        period.key,
        len(station_ids),
        len(batches),
    )
    return batches


def batch_label(station_ids: list[str]) -> str:
    """Return a label for a batch's mapped task instance, e.g. ``st-001 … st-050 (50)``."""
    if not station_ids:
        return "empty"
    if len(station_ids) == 1:
        return station_ids[0]
    return f"{station_ids[0]} … {station_ids[-1]} ({len(station_ids)})"


class _LazySession:
    """One SMTP session for a batch, opened at the first send and reopened after a loss."""

    def __init__(self, open_session: SmtpSessionFactory) -> None:
        self._open_session = open_session
        self._stack: ExitStack | None = None
        self._client: smtplib.SMTP | None = None

    def client(self) -> smtplib.SMTP:
        if self._client is None:
            stack = ExitStack()
            context: AbstractContextManager[smtplib.SMTP] = self._open_session()
            self._client = stack.enter_context(context)
            self._stack = stack
        return self._client

    def discard(self) -> None:
        stack, self._stack, self._client = self._stack, None, None
        if stack is not None:
            try:
                stack.close()
            except (smtplib.SMTPException, OSError) as exc:
                log.warning("Closing the SMTP session failed: %s", type(exc).__name__)


def send_station_reports(
    conn: Connection,
    open_session: SmtpSessionFactory,
    *,
    station_ids: list[str],
    run_date: dt.date,
    now: dt.datetime,
    settings: Settings,
    report_settings: ReportSettings,
    run_id: str | None = None,
) -> BatchCounts:
    """Build and mail the report of the current period to each station of a batch.

    ``now`` is the run's reference time: the lists are as of then, and the
    at-risk window starts then. Failures of single stations are recorded in
    the ledger and counted; call ``raise_for_problems`` afterwards to fail the
    task for them.
    """
    period = due_period(run_date, report_settings)
    if period is None:
        return BatchCounts(
            period_key="", stations=len(station_ids), skipped_not_due=len(station_ids)
        )
    counts = BatchCounts(period_key=period.key, stations=len(station_ids))

    claims = ledger.claim_reports(
        conn,
        station_ids,
        period=period,
        run_date=run_date,
        as_of=now,
        run_id=run_id,
        message_id_domain=settings.message_id_domain,
        lease_minutes=report_settings.claim_lease_minutes,
    )
    try:
        counts.skipped_in_progress = _count_in_progress(
            conn, station_ids, period, claims
        )
        counts.skipped_already_sent = (
            len(station_ids) - len(claims) - counts.skipped_in_progress
        )
        _report_claimed(
            conn,
            open_session,
            claims,
            period=period,
            run_date=run_date,
            now=now,
            settings=settings,
            report_settings=report_settings,
            counts=counts,
        )
    except BaseException as exc:
        _release_claims(conn, claims, exc)
        raise

    log.info(
        "Station reports of period %s, batch %s: %s",
        period.key,
        batch_label(station_ids),
        counts.as_dict(),
    )
    return counts


def _count_in_progress(
    conn: Connection,
    station_ids: list[str],
    period: ReportPeriod,
    claims: list[ledger.StationClaim],
) -> int:
    """Return how many of ``station_ids`` have a report still claimed by another attempt."""
    with conn.cursor() as cur:
        cur.execute(
            sqlfiles.load("report_count_in_progress"),
            {
                "station_ids": station_ids,
                "period_key": period.key,
                "claimed_ids": [claim.report_id for claim in claims],
            },
        )
        row = cur.fetchone()
    conn.commit()
    return int(row[0]) if row else 0


def _release_claims(
    conn: Connection, claims: list[ledger.StationClaim], error: BaseException
) -> None:
    """Mark every claim of the batch that got no outcome as failed.

    The outcome update changes only rows that are still 'sending', so the
    reports recorded before the error keep their outcome. A database error
    here is logged and not raised, so that ``error`` is the one that propagates.
    NOTE: a report whose mail was accepted just before the error is marked
    failed as well, so a retry sends that station the report again.
    """
    reason = f"interrupted by an error: {type(error).__name__}"
    try:
        conn.rollback()
        for claim in claims:
            ledger.record_outcome(
                conn, ledger.ReportOutcome(claim.report_id, "failed", failure_reason=reason)
            )
    except psycopg2.Error as db_error:
        log.error(
            "Releasing %d station report claims failed: %s",
            len(claims),
            type(db_error).__name__,
        )
        return
    log.warning(
        "Station report batch stopped by %s; marked its claims without an outcome "
        "failed (report ids %s)",
        type(error).__name__,
        [claim.report_id for claim in claims],
    )


def _report_claimed(
    conn: Connection,
    open_session: SmtpSessionFactory,
    claims: list[ledger.StationClaim],
    *,
    period: ReportPeriod,
    run_date: dt.date,
    now: dt.datetime,
    settings: Settings,
    report_settings: ReportSettings,
    counts: BatchCounts,
) -> None:
    """Record stations without a usable address, then build and send the other reports."""
    ready: list[tuple[ledger.StationClaim, tuple[str, ...]]] = []
    for claim in claims:
        addresses = tuple(a for a in claim.report_emails if address_problem(a) is None)
        if addresses:
            ready.append((claim, addresses))
            continue
        invalid = len(claim.report_emails)
        reason = (
            f"all {invalid} report addresses are invalid"
            if invalid
            else "no report address"
        )
        ledger.record_outcome(
            conn,
            ledger.ReportOutcome(claim.report_id, "no_address", failure_reason=reason),
        )
        counts.without_address += 1
        log.warning(
            "Station %s has no usable report address (%s)", claim.station_id, reason
        )

    rows_by_report = build_report_rows(
        conn,
        [claim.report_id for claim, _ in ready],
        [claim.station_id for claim, _ in ready],
        at_risk_until=now + dt.timedelta(days=report_settings.at_risk_days),
    )

    session = _LazySession(open_session)
    server_down: str | None = None
    try:
        for claim, addresses in ready:
            if server_down is not None:
                ledger.record_outcome(
                    conn,
                    ledger.ReportOutcome(
                        claim.report_id, "failed", failure_reason=server_down
                    ),
                )
                counts.failed += 1
                continue
            rows = rows_by_report[claim.report_id]
            server_down = _report_one(
                conn,
                session,
                claim,
                addresses,
                rows,
                period=period,
                run_date=run_date,
                now=now,
                settings=settings,
                report_settings=report_settings,
                counts=counts,
            )
    finally:
        session.discard()


def _letters_for(
    rows: list[ReportRow],
    claim: ledger.StationClaim,
    *,
    run_date: dt.date,
    settings: Settings,
    report_settings: ReportSettings,
) -> tuple[list[tuple[str, bytes]], int]:
    """Render letters for the new 不達 and new at-risk users, up to the maximum.

    Returns the (file name, PDF) pairs and the number of users left out.
    """
    wanted = [
        row for row in rows if row.is_new and row.list in ("undeliverable", "at_risk")
    ]
    domain = sender_domain(settings)
    letters: list[tuple[str, bytes]] = []
    for row in wanted[: report_settings.max_letters]:
        letter = NoticeLetter(
            user_id=row.user_id,
            user_name=row.name,
            email=row.email,
            postal_code=row.postal_code,
            postal_address=row.postal_address,
            status=row.status,
            lapse_reason=row.lapse_reason,
            expires_at=row.expires_at,
            station_name=claim.station_name,
            station_phone=claim.contact_phone,
            station_fax=claim.contact_fax,
            station_email=claim.contact_email,
            station_address=claim.postal_address,
            issued_on=run_date,
            sender_domain=domain,
        )
        letters.append(
            (
                letter_filename(letter),
                render_notice_letter(letter, settings.template_dir),
            )
        )
    return letters, max(0, len(wanted) - report_settings.max_letters)


def _report_one(
    conn: Connection,
    session: _LazySession,
    claim: ledger.StationClaim,
    addresses: tuple[str, ...],
    rows: list[ReportRow],
    *,
    period: ReportPeriod,
    run_date: dt.date,
    now: dt.datetime,
    settings: Settings,
    report_settings: ReportSettings,
    counts: BatchCounts,
) -> str | None:
    """Build, send and record one station's report.

    A report that cannot be built is recorded as failed, so one station's
    data never stops the batch. Returns a reason when the SMTP server cannot be
    reached, so the caller marks the remaining stations failed without trying
    each.
    """
    try:
        message, outcome = _build(
            claim,
            addresses,
            rows,
            period=period,
            run_date=run_date,
            now=now,
            settings=settings,
            report_settings=report_settings,
        )
    except Exception as exc:
        log.exception("Building the report of station %s failed", claim.station_id)
        ledger.record_outcome(
            conn,
            ledger.ReportOutcome(
                claim.report_id,
                "failed",
                failure_reason=f"report could not be built: {type(exc).__name__}",
            ),
        )
        counts.failed += 1
        return None

    outcome, server_down = _send(session, message, addresses, settings, outcome)
    # Invalid addresses of the station count as refused, so operators hear of them.
    invalid = tuple(a for a in claim.report_emails if a not in addresses)
    if invalid:
        outcome = replace(
            outcome, refused_recipients=invalid + outcome.refused_recipients
        )
    ledger.record_outcome(conn, outcome)
    if outcome.status == "sent":
        counts.reported += 1
        counts.letters += outcome.letter_count or 0
        log.info(
            "Station %s report %d sent: %d undeliverable, %d not renewed, %d at risk, "
            "%d letters, %d of %d addresses invalid or refused",
            claim.station_id,
            claim.report_id,
            outcome.undeliverable_count,
            outcome.not_renewed_count,
            outcome.at_risk_count,
            outcome.letter_count,
            len(outcome.refused_recipients),
            len(claim.report_emails),
        )
    else:
        counts.failed += 1
        log.warning(
            "Station %s report %d failed: %s",
            claim.station_id,
            claim.report_id,
            outcome.failure_reason,
        )
    return server_down


def _build(
    claim: ledger.StationClaim,
    addresses: tuple[str, ...],
    rows: list[ReportRow],
    *,
    period: ReportPeriod,
    run_date: dt.date,
    now: dt.datetime,
    settings: Settings,
    report_settings: ReportSettings,
) -> tuple[EmailMessage, ledger.ReportOutcome]:
    """Return the report mail of one station and its outcome as failed, to fill on send."""
    csv_file = write_report_csv(rows, claim.csv_encoding)
    letters, left_out = _letters_for(
        rows,
        claim,
        run_date=run_date,
        settings=settings,
        report_settings=report_settings,
    )
    csv_name = csv_filename(claim.station_name, run_date)
    subject, text, html = render_summary(
        SummaryContent(
            station_name=claim.station_name,
            station_id=claim.station_id,
            period=period,
            as_of=now,
            previous_as_of=claim.previous_as_of,
            rows=rows,
            csv_file=csv_file,
            csv_filename=csv_name,
            letter_count=len(letters),
            letters_left_out=left_out,
            sender_domain=sender_domain(settings),
            at_risk_days=report_settings.at_risk_days,
        ),
        settings.template_dir,
    )
    message = compose_report_mail(
        recipients=addresses,
        message_id=claim.message_id,
        subject=subject,
        text=text,
        html=html,
        csv_file=csv_file,
        csv_name=csv_name,
        letters=letters,
        settings=settings,
        now=dt.datetime.now(dt.UTC),
    )
    row_counts = count_rows(rows)
    base = ledger.ReportOutcome(
        claim.report_id,
        "failed",
        recipients=addresses,
        csv_encoding=csv_file.encoding,
        undeliverable_count=row_counts.undeliverable,
        not_renewed_count=row_counts.not_renewed,
        at_risk_count=row_counts.at_risk,
        new_lapsed_count=row_counts.new_lapsed,
        new_at_risk_count=row_counts.new_at_risk,
        letter_count=len(letters),
        replaced_cell_count=len(csv_file.replacements),
    )
    return message, base


def _send(
    session: _LazySession,
    message: EmailMessage,
    addresses: tuple[str, ...],
    settings: Settings,
    base: ledger.ReportOutcome,
) -> tuple[ledger.ReportOutcome, str | None]:
    """Send one report and return its outcome, plus a reason when the server is down."""
    try:
        client = session.client()
    except (smtplib.SMTPException, OSError) as exc:
        reason = f"SMTP server unavailable: {type(exc).__name__}"
        return replace(base, failure_reason=reason), reason

    try:
        refused = client.sendmail(
            report_envelope_from(settings), list(addresses), message.as_bytes()
        )
    except smtplib.SMTPRecipientsRefused as exc:
        codes = sorted({code for code, _ in exc.recipients.values()})
        reason = f"every report address refused by the SMTP server ({', '.join(map(str, codes))})"
        return replace(base, refused_recipients=addresses, failure_reason=reason), None
    except smtplib.SMTPResponseException as exc:
        reason = f"rejected by the SMTP server ({exc.smtp_code})"
        return replace(base, failure_reason=reason), None
    except (smtplib.SMTPServerDisconnected, OSError) as exc:
        # The session is unusable; the next station opens a new one.
        session.discard()
        reason = f"connection lost during send: {type(exc).__name__}"
        return replace(base, failure_reason=reason), None
    refused_addresses = tuple(a for a in addresses if a in refused)
    return replace(base, status="sent", refused_recipients=refused_addresses), None


def raise_for_problems(
    conn: Connection,
    station_ids: list[str],
    *,
    run_date: dt.date,
    report_settings: ReportSettings,
    run_id: str | None,
) -> None:
    """Raise ``StationReportError`` naming the stations of a batch whose report needs operators.

    Those are stations without a usable report address, stations whose report
    failed, and stations whose report this run sent while some addresses were
    refused. Reading the ledger, not this attempt's counts, keeps the error
    standing across task retries until the cause is fixed.
    """
    period = due_period(run_date, report_settings)
    if period is None:
        return
    problems = ledger.batch_problems(conn, station_ids, period=period, run_id=run_id)
    if problems:
        raise StationReportError(period.key, problems)
