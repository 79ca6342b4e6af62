"""Accept every message on a local SMTP port and keep each one as an ``.eml`` file.

The sink replaces the outgoing SMTP server in the demo and the tests. It
accepts any sender and recipient, including pre-2009 carrier addresses such as
``taro..yamada.@docomo.ne.jp`` and UTF-8 addresses (SMTPUTF8), and never
delivers anything.

Each message becomes one file named ``NNNNNNNN.eml``, where the zero-padded
sequence number grows with arrival, so sorting the names sorts by arrival.
The envelope is prepended as headers, because the VERP return path exists only
in the envelope:

    Return-Path: <bounce+token@bounce.example.jp>
    X-Envelope-To: <taro.yamada@docomo.ne.jp>

``X-Envelope-To`` lists every envelope recipient, comma-separated. The message
itself follows byte for byte as received (CRLF line endings, dot-stuffing
removed). Files appear atomically, so a reader never sees half a message.

Use ``SmtpSink`` as a context manager in tests, or run the module as a command::

    python -m net119.devtools.smtp_sink --dir .demo/mail --port 2525
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import re
import signal
import socket
import threading
from pathlib import Path
from types import FrameType, TracebackType

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

log = logging.getLogger(__name__)

# Large enough for any reminder or report with attachments. aiosmtpd's own
# default is 32 MiB.
DATA_SIZE_LIMIT = 64 * 1024 * 1024
MESSAGE_SUFFIX = ".eml"
_MESSAGE_NAME = re.compile(r"^(\d{8,})\.eml$")
# Binding a port found free can fail when another process takes it first.
_PORT_ATTEMPTS = 3


class MessageStore:
    """A folder of ``.eml`` files numbered in arrival order.

    Several stores, in one or more processes, may write to the same folder,
    because each file name is claimed with a hard link, which fails when the
    name exists.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._next_number = self._last_number() + 1

    def _last_number(self) -> int:
        numbers = [
            int(match.group(1))
            for match in map(_MESSAGE_NAME.match, os.listdir(self.directory))
            if match is not None
        ]
        return max(numbers, default=0)

    def add(self, mail_from: str, rcpt_tos: list[str], content: bytes) -> Path:
        """Write ``content`` after the envelope headers and return the file's path."""
        data = envelope_headers(mail_from, rcpt_tos, content) + content
        temporary = self.directory / f".tmp-{os.getpid()}-{threading.get_ident()}"
        temporary.write_bytes(data)
        try:
            with self._lock:
                while True:
                    path = self.directory / f"{self._next_number:08d}{MESSAGE_SUFFIX}"
                    self._next_number += 1
                    try:
                        os.link(temporary, path)
                    except FileExistsError:
                        continue
                    return path
        finally:
            temporary.unlink()

    def paths(self) -> list[Path]:
        """Return the stored messages in arrival order."""
        return sorted(self.directory.glob(f"*{MESSAGE_SUFFIX}"))


def envelope_headers(mail_from: str, rcpt_tos: list[str], content: bytes) -> bytes:
    """Return ``Return-Path`` and ``X-Envelope-To`` header lines for an envelope.

    The lines end like the message's first line (CRLF or LF). Addresses are
    written in UTF-8, which RFC 6532 allows in headers of SMTPUTF8 messages.
    """
    newline = b"\r\n" if content.split(b"\n", 1)[0].endswith(b"\r") else b"\n"
    recipients = ", ".join(f"<{address}>" for address in rcpt_tos)
    return (
        f"Return-Path: <{mail_from}>".encode() + newline
        + f"X-Envelope-To: {recipients}".encode() + newline
    )


class _StoreHandler:
    """aiosmtpd handler that hands every message to a store.

    With ``reject_percent`` above 0 it rejects that share of recipient
    addresses at RCPT with 550 5.1.1, as a carrier rejects unknown users. A
    hash of the address picks them, so the same addresses fail on every run.
    """

    def __init__(self, store: MessageStore, reject_percent: float = 0.0) -> None:
        self.store = store
        self.received = 0
        self.reject_percent = reject_percent

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope,
        address: str, rcpt_options: list[str],
    ) -> str:
        if self.reject_percent > 0:
            bucket = int(hashlib.sha256(address.encode("utf-8", "replace")).hexdigest()[:8], 16)
            if bucket % 10_000 < self.reject_percent * 100:
                return "550 5.1.1 Recipient address rejected: User unknown"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        content = envelope.original_content or b""
        recipients = list(envelope.rcpt_tos)
        path = self.store.add(envelope.mail_from or "", recipients, content)
        self.received += 1
        log.info(
            "Stored message %s: %d bytes, %d recipients",
            path.name,
            len(content),
            len(recipients),
        )
        return "250 OK: message stored"


def find_free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port on ``host`` that was free a moment ago.

    Another process can take the port before the caller binds it, so callers
    that cannot tolerate that should retry.
    """
    return _probe_bind(host, 0)


def _probe_bind(host: str, port: int) -> int:
    """Bind and release ``host:port`` and return the port, or raise ``OSError``.

    aiosmtpd reports a failed bind only after its ready timeout (5 s), so the
    sink checks first. SO_REUSEADDR matches asyncio's listening sockets, which
    may bind a port that still has connections in TIME_WAIT.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((host, port))
        return int(probe.getsockname()[1])


class SmtpSink:
    """An SMTP server in a background thread that stores messages in ``directory``.

    ``port=0`` picks a free port, available as ``.port`` once started. The
    server advertises SMTPUTF8 and accepts messages up to ``DATA_SIZE_LIMIT``
    bytes. Typical use in a test::

        with SmtpSink(tmp_path / "mail") as sink:
            smtplib.SMTP(sink.host, sink.port).send_message(message)
            paths = sink.messages()
    """

    def __init__(
        self, directory: Path, host: str = "127.0.0.1", port: int = 0,
        reject_percent: float = 0.0,
    ) -> None:
        self.directory = Path(directory)
        self.host = host
        self.port = port
        self.store = MessageStore(self.directory)
        self._handler = _StoreHandler(self.store, reject_percent)
        self._controller: Controller | None = None

    @property
    def received(self) -> int:
        """Number of messages this sink has stored, over all its starts."""
        return self._handler.received

    def messages(self) -> list[Path]:
        """Return every ``.eml`` file in the folder, in arrival order."""
        return self.store.paths()

    def start(self) -> None:
        """Bind the port and start serving. Raise ``OSError`` if the port is taken."""
        if self._controller is not None:
            raise RuntimeError("SMTP sink is already running")
        # Controller(port=0) cannot work because its readiness check connects
        # to the port number it was given, so the sink picks a free port
        # itself and picks again if another process took it meanwhile.
        pick_port = self.port == 0
        for attempt in range(1, _PORT_ATTEMPTS + 1):
            if pick_port:
                self.port = find_free_port(self.host)
            else:
                _probe_bind(self.host, self.port)
            controller = Controller(
                self._handler,
                hostname=self.host,
                port=self.port,
                enable_SMTPUTF8=True,
                data_size_limit=DATA_SIZE_LIMIT,
            )
            try:
                controller.start()
            except OSError as error:
                if not pick_port or attempt == _PORT_ATTEMPTS:
                    raise
                log.warning("Port %d was taken (%s), picking another", self.port, error)
                continue
            break
        self._controller = controller
        log.info(
            "SMTP sink listening on %s:%d, storing messages in %s",
            self.host,
            self.port,
            self.directory,
        )

    def stop(self) -> None:
        """Stop serving. Messages already stored stay in the folder."""
        if self._controller is None:
            return
        self._controller.stop()
        self._controller = None
        log.info(
            "SMTP sink on %s:%d stopped after %d messages",
            self.host,
            self.port,
            self.received,
        )

    def __enter__(self) -> SmtpSink:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m net119.devtools.smtp_sink",
        description="Run an SMTP server that stores every message as an .eml file.",
    )
    parser.add_argument(
        "--dir",
        required=True,
        type=Path,
        help="folder for the .eml files (created if missing)",
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)"
    )
    parser.add_argument(
        "--port", type=int, default=2525,
        help="TCP port to listen on, or 0 to pick a free port (default: 2525)",
    )
    parser.add_argument(
        "--reject-percent", type=float, default=0.0,
        help="percentage of recipient addresses rejected with 550 5.1.1 User "
        "unknown, the same addresses on every run (default: 0)",
    )
    parser.add_argument(
        "--pid-file", type=Path,
        help="file that receives this process's id while it runs "
        "(default: .smtp-sink.pid inside --dir)",
    )
    parser.add_argument(
        "--port-file", type=Path,
        help="file that receives the listening port once the server accepts "
        "connections; useful with --port 0",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the sink until SIGTERM or SIGINT, then remove the pid and port files."""
    args = _parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # aiosmtpd logs every envelope address at INFO, and addresses stay out of logs.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    pid_file: Path = args.pid_file or args.dir / ".smtp-sink.pid"

    stop_requested = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        log.info("Received %s, stopping", signal.Signals(signum).name)
        stop_requested.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)

    if not 0 <= args.reject_percent <= 100:
        log.error("invalid --reject-percent %s: expected 0 to 100", args.reject_percent)
        return 2
    sink = SmtpSink(args.dir, host=args.host, port=args.port, reject_percent=args.reject_percent)
    try:
        sink.start()
    except OSError as error:
        log.error("SMTP sink failed to start: %s", error)
        return 1

    written: list[Path] = []
    try:
        pid_file.parent.mkdir(parents=True, exist_ok=True)
        pid_file.write_text(f"{os.getpid()}\n")
        written.append(pid_file)
        if args.port_file is not None:
            args.port_file.parent.mkdir(parents=True, exist_ok=True)
            args.port_file.write_text(f"{sink.port}\n")
            written.append(args.port_file)
        log.info("SMTP sink started with pid %d", os.getpid())
        # Event.wait with a timeout lets the signal handler run promptly.
        while not stop_requested.wait(timeout=1.0):
            pass
    finally:
        sink.stop()
        for path in written:
            path.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
