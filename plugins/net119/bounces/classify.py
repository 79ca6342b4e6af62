"""Print what the bounce parser makes of message files, one JSON line per file.

Usage::

    python -m net119.bounces.classify [--max-bytes N] FILE...

Each line is a JSON object (UTF-8, not ASCII-escaped) with the keys ``path``,
``kind``, ``verp_token``, ``message_id``, ``quarantine_reason``,
``recipients`` and ``error``. Each recipient has ``recipient``,
``original_recipient``, ``action``, ``status``, ``smtp_code``,
``diagnostic``, ``category`` and ``final_failure``. A file that cannot be
read, is not a regular file or is larger than the limit gets an ``error``
text, ``kind`` null and no recipients, and the run goes on with the next
file. A directory, FIFO or device is never opened.

Exit status: 0 when every file was read, 1 when at least one was not, 2 for
invalid arguments. Nothing but the JSON lines goes to standard output, and
no database is used. ``main`` is also the entry point of the
``net119 classify-bounces`` subcommand.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import stat
import sys
from collections.abc import Sequence
from typing import Any, BinaryIO

from net119.bounces.model import (
    MAX_BOUNCE_BYTES,
    BounceReport,
    BounceTooLarge,
    QuarantineReason,
    RecipientResult,
)
from net119.bounces.parse import parse_bounce

# Named explicitly because under `python -m` __name__ is "__main__".
log = logging.getLogger("net119.bounces.classify")


def recipient_json(result: RecipientResult) -> dict[str, Any]:
    """Return the JSON object of one recipient result."""
    return {
        "recipient": result.recipient,
        "original_recipient": result.original_recipient,
        "action": result.action,
        "status": result.status,
        "smtp_code": result.smtp_code,
        "diagnostic": result.diagnostic,
        "category": result.category.value if result.category is not None else None,
        "final_failure": result.is_final_failure,
    }


def report_json(path: str, report: BounceReport) -> dict[str, Any]:
    """Return the JSON object printed for a file that was parsed."""
    quarantine = report.quarantine_reason
    return {
        "path": path,
        "kind": report.kind.value,
        "verp_token": report.verp_token,
        "message_id": report.message_id,
        "quarantine_reason": quarantine.value if quarantine is not None else None,
        "recipients": [recipient_json(result) for result in report.recipients],
        "error": None,
    }


def error_json(
    path: str, error: str, quarantine: QuarantineReason | None = None
) -> dict[str, Any]:
    """Return the JSON object printed for a file that was not parsed."""
    return {
        "path": path,
        "kind": None,
        "verp_token": None,
        "message_id": None,
        "quarantine_reason": quarantine.value if quarantine is not None else None,
        "recipients": [],
        "error": error,
    }


class NotRegularFile(OSError):
    """A path that names a directory, FIFO, socket or device, not a message file."""


def _check_regular(path: str, mode: int) -> None:
    if stat.S_ISREG(mode):
        return
    if stat.S_ISDIR(mode):
        kind = "a directory"
    elif stat.S_ISFIFO(mode):
        kind = "a FIFO"
    elif stat.S_ISSOCK(mode):
        kind = "a socket"
    elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        kind = "a device"
    else:
        kind = "of another file type"
    raise NotRegularFile(f"not a regular file but {kind}; give a message file")


def read_limited(path: str, max_bytes: int) -> bytes:
    """Read a regular file, raising ``BounceTooLarge`` before reading one over ``max_bytes``.

    Raises ``NotRegularFile`` without opening the path when it is not a
    regular file, because reading a FIFO or a terminal blocks.
    """
    _check_regular(path, os.stat(path).st_mode)
    # O_NONBLOCK keeps open() from blocking when the path was replaced by a
    # FIFO after the stat, and fstat then rejects it.
    descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
    with open(descriptor, "rb") as file:
        status = os.fstat(file.fileno())
        _check_regular(path, status.st_mode)
        size = status.st_size
        if size > max_bytes:
            raise BounceTooLarge(size, max_bytes)
        # The file may grow between fstat and read, so read one byte more
        # than the limit and let parse_bounce reject it.
        return file.read(max_bytes + 1)


def classify_file(path: str, max_bytes: int = MAX_BOUNCE_BYTES) -> dict[str, Any]:
    """Parse one file and return its JSON object.

    A missing, unreadable, non-regular or oversized file gives an object with
    ``error`` set instead of an exception.
    """
    try:
        raw = read_limited(path, max_bytes)
        report = parse_bounce(raw, max_bytes=max_bytes)
    except BounceTooLarge as exc:
        return error_json(path, str(exc), exc.reason)
    except NotRegularFile as exc:
        return error_json(path, str(exc))
    except OSError as exc:
        return error_json(path, f"failed to read the file: {exc.strerror or exc}")
    return report_json(path, report)


def _positive_bytes(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid value {text!r}: expected a whole number of bytes"
        ) from None
    if value < 1:
        raise argparse.ArgumentTypeError(
            f"invalid value {value}: use 1 or more bytes"
        )
    return value


def _parse_arguments(
    argv: Sequence[str] | None, prog: str | None
) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=prog,
        description=(
            "Parse bounce messages (RFC 5322 files, one message per file) and "
            "print one JSON object per file on standard output."
        ),
    )
    parser.add_argument(
        "files", nargs="+", metavar="FILE", help="message file to parse"
    )
    parser.add_argument(
        "--max-bytes",
        type=_positive_bytes,
        default=MAX_BOUNCE_BYTES,
        help=f"largest file to parse, in bytes, 1 or more (default {MAX_BOUNCE_BYTES})",
    )
    return parser.parse_args(argv)


def _write_line(stream: BinaryIO, document: dict[str, Any]) -> None:
    line = json.dumps(document, ensure_ascii=False) + "\n"
    stream.write(line.encode("utf-8"))


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """Run the command on ``argv`` (default ``sys.argv[1:]``).

    Returns the exit status.
    """
    arguments = _parse_arguments(argv, prog)
    if not logging.getLogger().handlers:
        logging.basicConfig(stream=sys.stderr, level=logging.WARNING)

    stdout = sys.stdout.buffer
    unread = 0
    try:
        for path in arguments.files:
            document = classify_file(path, arguments.max_bytes)
            if document["error"] is not None:
                unread += 1
            _write_line(stdout, document)
        stdout.flush()
    except BrokenPipeError:
        # The reader (e.g. `head`) closed the pipe, so stop quietly. Standard
        # output is redirected so that closing it at exit raises nothing.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1

    if unread:
        log.warning("%d of %d files were not parsed", unread, len(arguments.files))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
