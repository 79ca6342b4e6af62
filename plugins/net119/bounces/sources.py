"""Read raw messages from the bounce mailbox: a Maildir or an IMAP mailbox.

A source yields ``RawMessage(key, raw)`` pairs. The caller records each
message under its key and then calls ``acknowledge(key)``. Only then does
the source mark or move the message, so a crash between reading and
recording loses nothing: the message is yielded again on the next pass, and
the key lets the caller recognise it. Nothing is ever deleted.

Maildir (``MaildirSource``, ``MaildirConfig``)
    Reads the ``new/`` and ``cur/`` folders of a Maildir (the layout of
    https://cr.yp.to/proto/maildir.html). The key is ``sha256:`` and the hex
    SHA-256 of the raw bytes, so identical copies are yielded once and
    acknowledged together. After ``acknowledge`` the file is renamed into the
    Maildir++ subfolder ``.processed`` (``after_ack="move"``, the default,
    folder name configurable) or, with ``after_ack="flag"``, flagged seen
    (``:2,S``) in ``cur/`` and skipped from then on.

IMAP (``ImapSource``, ``ImapConfig``)
    Logs in with ``imaplib`` and reads the messages of one mailbox that do
    not have ``\\Seen`` or ``\\Deleted``, with ``BODY.PEEK[]`` so that reading
    sets no flag. The key is ``imap:<UIDVALIDITY>:<UID>``. After
    ``acknowledge`` the message gets ``\\Seen`` and, when
    ``processed_mailbox`` is set, is moved there (``UID MOVE``, RFC 6851) or,
    on a server without MOVE, copied there. Settings: ``host``, ``port``
    (default 993 with ``ssl``, else 143), ``user``, ``password``,
    ``mailbox`` (default ``INBOX``), ``ssl`` (implicit TLS, default true),
    ``starttls`` (upgrade a plain connection, default false),
    ``processed_mailbox`` (default none) and ``timeout`` in seconds
    (default 30). The mailbox must be dedicated to bounces: a person who
    reads a message there in a mail client marks it seen, and the source
    then skips it.

Airflow connection (``source_from_airflow_connection``, default id
``net119_bounces``)
    Connection type ``imap``: host, port, login and password as usual, the
    other IMAP settings in the extra JSON, for example::

        AIRFLOW_CONN_NET119_BOUNCES='{"conn_type": "imap", "host": "mail.example.jp",
          "port": 993, "login": "bounces", "password": "...",
          "extra": {"mailbox": "INBOX", "ssl": true, "processed_mailbox": "processed"}}'

    Connection type ``fs`` (Airflow's file path type) or ``maildir``: the
    Maildir path in the extra field ``path``, plus optional
    ``processed_folder`` and ``after_ack``::

        AIRFLOW_CONN_NET119_BOUNCES='{"conn_type": "fs",
          "extra": {"path": "/var/mail/net119-bounces", "after_ack": "move"}}'

``source_from_config`` builds a source from the same settings as a plain
mapping (``{"type": "imap", ...}`` or ``{"type": "maildir", ...}``) without
Airflow.
"""

from __future__ import annotations

import hashlib
import imaplib
import logging
import mailbox
import os
import re
import ssl
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple, Self

log = logging.getLogger(__name__)

DEFAULT_CONNECTION_ID = "net119_bounces"


class RawMessage(NamedTuple):
    """One message from a source: the key to acknowledge it with and its bytes."""

    key: str
    raw: bytes


class BounceSourceError(Exception):
    """Raised when a source cannot be opened, read or updated."""


class UnknownMessageKey(BounceSourceError, KeyError):
    """Raised by ``acknowledge`` for a key that the current pass did not yield."""


class BounceSource(ABC):
    """A mailbox of bounces that yields messages and takes acknowledgements.

    Use it as a context manager, or call ``close``. Each call of ``messages``
    is one pass over the messages not yet acknowledged.
    """

    @abstractmethod
    def messages(self) -> Iterator[RawMessage]:
        """Yield each message not yet acknowledged, once per pass."""

    @abstractmethod
    def acknowledge(self, key: str) -> None:
        """Mark the message with ``key`` as recorded so no later pass yields it."""

    def close(self) -> None:  # noqa: B027 - a no-op default, not an abstract method
        """Release connections; the default does nothing."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


# --- Maildir ---------------------------------------------------------------


class AfterAck(StrEnum):
    """Action of a Maildir source on an acknowledged message."""

    #: Rename it into the Maildir++ subfolder, flagged seen.
    MOVE = "move"
    #: Flag it seen in ``cur/`` of the same folder; flagged messages are skipped.
    FLAG = "flag"


@dataclass(frozen=True, slots=True)
class MaildirConfig:
    """Settings of a Maildir source; see the module documentation."""

    path: Path
    processed_folder: str = "processed"
    after_ack: AfterAck = AfterAck.MOVE

    def __post_init__(self) -> None:
        if not self.processed_folder or "/" in self.processed_folder:
            raise ValueError(
                f"invalid processed folder {self.processed_folder!r}: give a folder "
                "name without '/', such as 'processed'"
            )


@dataclass(frozen=True, slots=True)
class _MaildirEntry:
    subdir: str
    name: str

    @property
    def flags(self) -> str:
        _unique, separator, info = self.name.partition(mailbox.Maildir.colon)
        if separator and info.startswith("2,"):
            return info[2:]
        return ""


class MaildirSource(BounceSource):
    """Bounce source over a Maildir; see the module documentation."""

    def __init__(self, config: MaildirConfig) -> None:
        self._config = config
        self._root = Path(config.path)
        for subdir in ("new", "cur", "tmp"):
            if not (self._root / subdir).is_dir():
                raise BounceSourceError(
                    f"{self._root} is no Maildir: the folder {subdir}/ is missing; "
                    "check the configured path"
                )
        # Opening it with the standard library checks the layout once more
        # and creates the Maildir++ folder for processed messages.
        self._maildir = mailbox.Maildir(self._root, factory=None, create=False)
        self._processed_root: Path | None = None
        # State of the current pass: files per yielded key not yet
        # acknowledged, and the keys acknowledged so far.
        self._pending: dict[str, list[_MaildirEntry]] = {}
        self._acknowledged: set[str] = set()

    def _processed_dir(self) -> Path:
        if self._processed_root is None:
            if self._config.processed_folder not in self._maildir.list_folders():
                self._maildir.add_folder(self._config.processed_folder)
            self._processed_root = self._root / f".{self._config.processed_folder}"
        return self._processed_root

    def _entries(self) -> list[_MaildirEntry]:
        entries = []
        for subdir in ("new", "cur"):
            with os.scandir(self._root / subdir) as listing:
                for item in listing:
                    if item.name.startswith(".") or not item.is_file():
                        continue
                    entries.append(_MaildirEntry(subdir, item.name))
        entries.sort(key=lambda entry: entry.name)
        return entries

    def messages(self) -> Iterator[RawMessage]:
        """Yield each message in ``new/`` and ``cur/`` not yet acknowledged."""
        self._pending = {}
        self._acknowledged = set()
        yielded: set[str] = set()
        for entry in self._entries():
            if self._config.after_ack is AfterAck.FLAG and "S" in entry.flags:
                continue
            try:
                raw = (self._root / entry.subdir / entry.name).read_bytes()
            except FileNotFoundError:
                # Another reader moved it after the listing.
                continue
            key = "sha256:" + hashlib.sha256(raw).hexdigest()
            if key in self._acknowledged:
                # A copy of a message that the caller has already recorded.
                self._acknowledge_entry(entry)
                continue
            self._pending.setdefault(key, []).append(entry)
            if key in yielded:
                continue
            yielded.add(key)
            yield RawMessage(key, raw)
        log.info("Maildir pass yielded %d messages", len(yielded))

    def acknowledge(self, key: str) -> None:
        """Move or flag every copy of the message with ``key`` (see ``AfterAck``).

        A second acknowledgement of the same key in one pass does nothing.
        """
        if key in self._acknowledged:
            return
        entries = self._pending.pop(key, None)
        if entries is None:
            raise UnknownMessageKey(
                f"message key {key!r} was not yielded by the current pass"
            )
        self._acknowledged.add(key)
        for entry in entries:
            self._acknowledge_entry(entry)

    def _acknowledge_entry(self, entry: _MaildirEntry) -> None:
        unique = entry.name.partition(mailbox.Maildir.colon)[0]
        flags = "".join(sorted(set(entry.flags) | {"S"}))
        new_name = f"{unique}{mailbox.Maildir.colon}2,{flags}"
        if self._config.after_ack is AfterAck.MOVE:
            target = self._processed_dir() / "cur" / new_name
        else:
            target = self._root / "cur" / new_name
        source = self._root / entry.subdir / entry.name
        try:
            # A rename within one file system is atomic, so the message is
            # always in exactly one place.
            os.rename(source, target)
        except FileNotFoundError as exc:
            raise BounceSourceError(
                f"message file {source.name} disappeared before it was acknowledged"
            ) from exc


# --- IMAP ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ImapConfig:
    """Settings of an IMAP source; see the module documentation."""

    host: str
    user: str
    password: str = field(repr=False)
    port: int | None = None
    mailbox: str = "INBOX"
    ssl: bool = True
    starttls: bool = False
    processed_mailbox: str | None = None
    timeout: float = 30.0

    def __post_init__(self) -> None:
        if self.ssl and self.starttls:
            raise ValueError("set either ssl (implicit TLS) or starttls, not both")
        for name in (self.mailbox, self.processed_mailbox):
            # NOTE: non-ASCII names need IMAP's modified UTF-7, which is not
            # implemented; name the folders in ASCII.
            if name is not None and (not name or not name.isascii()):
                raise ValueError(
                    f"invalid IMAP mailbox name {name!r}: use a non-empty ASCII name"
                )

    @property
    def effective_port(self) -> int:
        """The configured port, or 993 with implicit TLS and 143 without."""
        if self.port is not None:
            return self.port
        return 993 if self.ssl else 143


def _quote_mailbox(name: str) -> str:
    escaped = name.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


_FETCH_UID_RE = re.compile(rb"UID (\d+)")


class ImapSource(BounceSource):
    """Bounce source over one IMAP mailbox; see the module documentation."""

    def __init__(
        self, config: ImapConfig, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        self._config = config
        self._ssl_context = ssl_context
        self._connection: imaplib.IMAP4 | None = None
        self._uidvalidity: str | None = None
        self._capabilities: frozenset[str] = frozenset()

    @property
    def uidvalidity(self) -> str | None:
        """UIDVALIDITY of the selected mailbox, once connected."""
        return self._uidvalidity

    def _connect(self) -> imaplib.IMAP4:
        if self._connection is not None:
            return self._connection
        config = self._config
        context = self._ssl_context or ssl.create_default_context()
        log.info(
            "Connecting to IMAP server %s:%d, mailbox %s",
            config.host,
            config.effective_port,
            config.mailbox,
        )
        try:
            if config.ssl:
                connection: imaplib.IMAP4 = imaplib.IMAP4_SSL(
                    config.host,
                    config.effective_port,
                    ssl_context=context,
                    timeout=config.timeout,
                )
            else:
                connection = imaplib.IMAP4(
                    config.host, config.effective_port, timeout=config.timeout
                )
        except OSError as exc:
            raise BounceSourceError(
                f"connecting to IMAP server {config.host}:{config.effective_port} "
                f"failed: {exc}"
            ) from exc

        try:
            self._open_mailbox(connection)
        except BaseException as exc:
            # Close the socket, which would otherwise stay open until garbage
            # collection.
            connection.shutdown()
            if isinstance(exc, (OSError, imaplib.IMAP4.error)):
                raise BounceSourceError(
                    f"logging in to IMAP server {config.host}:{config.effective_port} "
                    f"as {config.user!r} or opening mailbox {config.mailbox!r} "
                    f"failed: {exc}"
                ) from exc
            raise
        self._connection = connection
        return connection

    def _open_mailbox(self, connection: imaplib.IMAP4) -> None:
        """Log in, select the mailbox and create the processed mailbox."""
        config = self._config
        if config.starttls:
            connection.starttls(
                ssl_context=self._ssl_context or ssl.create_default_context()
            )
        connection.login(config.user, config.password)
        status, data = connection.select(_quote_mailbox(config.mailbox))
        if status != "OK":
            raise BounceSourceError(
                f"selecting IMAP mailbox {config.mailbox!r} failed: {_text(data)}"
            )
        _status, uidvalidity = connection.response("UIDVALIDITY")
        self._uidvalidity = _text(uidvalidity)
        _status, capability = connection.capability()
        self._capabilities = frozenset(_text(capability).upper().split())
        if config.processed_mailbox is not None:
            # CREATE fails with [ALREADYEXISTS] once the mailbox exists, and
            # that response is ignored.
            connection.create(_quote_mailbox(config.processed_mailbox))

    def messages(self) -> Iterator[RawMessage]:
        """Yield each message without ``\\Seen`` and ``\\Deleted``, oldest UID first."""
        connection = self._connect()
        try:
            status, data = connection.uid("SEARCH", "UNSEEN UNDELETED")
        except (OSError, imaplib.IMAP4.error) as exc:
            raise BounceSourceError(f"IMAP SEARCH failed: {exc}") from exc
        if status != "OK":
            raise BounceSourceError(f"IMAP SEARCH failed: {_text(data)}")
        uids = sorted({int(uid) for uid in _text(data).split()})
        log.info("IMAP mailbox has %d unseen messages", len(uids))

        for uid in uids:
            raw = self._fetch(connection, uid)
            if raw is None:
                # Expunged by another client after the search.
                continue
            yield RawMessage(f"imap:{self._uidvalidity}:{uid}", raw)

    def _fetch(self, connection: imaplib.IMAP4, uid: int) -> bytes | None:
        try:
            status, data = connection.uid("FETCH", str(uid), "(UID BODY.PEEK[])")
        except (OSError, imaplib.IMAP4.error) as exc:
            raise BounceSourceError(f"IMAP FETCH of UID {uid} failed: {exc}") from exc
        if status != "OK":
            raise BounceSourceError(f"IMAP FETCH of UID {uid} failed: {_text(data)}")
        for item in data:
            if not isinstance(item, tuple) or len(item) < 2:
                continue
            match = _FETCH_UID_RE.search(item[0])
            if match is not None and int(match.group(1)) != uid:
                continue
            return bytes(item[1])
        return None

    def acknowledge(self, key: str) -> None:
        """Set ``\\Seen`` on the message and move it to the processed mailbox if set.

        Raises ``UnknownMessageKey`` when ``key`` is not an IMAP key of the
        selected mailbox's current UIDVALIDITY; after a UIDVALIDITY change the
        server has renumbered the messages, so the caller reads them again.
        """
        prefix, _separator, rest = key.partition(":")
        uidvalidity, _separator, uid = rest.partition(":")
        if prefix != "imap" or not uid.isdigit():
            raise UnknownMessageKey(f"invalid IMAP message key {key!r}")
        connection = self._connect()
        if uidvalidity != self._uidvalidity:
            raise UnknownMessageKey(
                f"message key {key!r} is from UIDVALIDITY {uidvalidity}, but the "
                f"mailbox now has {self._uidvalidity}; read the mailbox again"
            )

        config = self._config
        try:
            self._check(
                connection.uid("STORE", uid, "+FLAGS.SILENT", "(\\Seen)"), "STORE", uid
            )
            if config.processed_mailbox is not None:
                target = _quote_mailbox(config.processed_mailbox)
                if "MOVE" in self._capabilities:
                    self._check(connection.uid("MOVE", uid, target), "MOVE", uid)
                else:
                    self._check(connection.uid("COPY", uid, target), "COPY", uid)
        except (OSError, imaplib.IMAP4.error) as exc:
            raise BounceSourceError(
                f"acknowledging IMAP UID {uid} failed: {exc}"
            ) from exc

    @staticmethod
    def _check(response: tuple[str, list[Any]], command: str, uid: str) -> None:
        status, data = response
        if status != "OK":
            raise BounceSourceError(
                f"IMAP {command} of UID {uid} failed: {_text(data)}"
            )

    def close(self) -> None:
        """Close the mailbox and log out; errors on the way out are logged only."""
        connection, self._connection = self._connection, None
        if connection is None:
            return
        try:
            connection.close()
            connection.logout()
        except (OSError, imaplib.IMAP4.error) as exc:
            log.warning(
                "Closing the IMAP connection to %s failed: %s", self._config.host, exc
            )
            connection.shutdown()


def _text(data: Any) -> str:
    """Join the text items of an imaplib response list."""
    pieces = []
    for item in data or []:
        if isinstance(item, bytes):
            pieces.append(item.decode("utf-8", errors="replace"))
        elif isinstance(item, str):
            pieces.append(item)
    return " ".join(pieces)


# --- Construction from settings ----------------------------------------------


def _as_bool(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "1", "yes"):
        return True
    if isinstance(value, str) and value.strip().lower() in ("false", "0", "no"):
        return False
    raise ValueError(f"invalid value {value!r} for {name}: use true or false")


def source_from_config(settings: Mapping[str, Any]) -> BounceSource:
    """Build a source from a mapping with ``type`` ``imap`` or ``maildir``.

    The other keys are the fields of ``ImapConfig`` or ``MaildirConfig``.
    Raises ``ValueError`` for a missing or invalid setting.
    """
    source_type = str(settings.get("type", "")).lower()
    if source_type == "imap":
        missing = [
            name for name in ("host", "user", "password") if not settings.get(name)
        ]
        if missing:
            raise ValueError(
                f"IMAP bounce source settings are missing {', '.join(missing)}"
            )
        port = settings.get("port")
        processed = settings.get("processed_mailbox")
        return ImapSource(
            ImapConfig(
                host=str(settings["host"]),
                user=str(settings["user"]),
                password=str(settings["password"]),
                port=int(port) if port else None,
                mailbox=str(settings.get("mailbox") or "INBOX"),
                ssl=_as_bool(settings.get("ssl", True), "ssl"),
                starttls=_as_bool(settings.get("starttls", False), "starttls"),
                processed_mailbox=str(processed) if processed else None,
                timeout=float(settings.get("timeout", 30.0)),
            )
        )
    if source_type == "maildir":
        if not settings.get("path"):
            raise ValueError("Maildir bounce source settings are missing path")
        return MaildirSource(
            MaildirConfig(
                path=Path(str(settings["path"])),
                processed_folder=str(settings.get("processed_folder") or "processed"),
                after_ack=AfterAck(str(settings.get("after_ack") or "move")),
            )
        )
    raise ValueError(
        f"invalid bounce source type {source_type!r}: use 'imap' or 'maildir'"
    )


def source_from_airflow_connection(
    conn_id: str = DEFAULT_CONNECTION_ID,
) -> BounceSource:
    """Build a source from an Airflow connection (see the module documentation).

    Airflow is imported here, not at module level, so the parser and the
    classify command run without it.
    """
    from airflow.sdk import BaseHook

    connection = BaseHook.get_connection(conn_id)
    extra: dict[str, Any] = dict(connection.extra_dejson or {})
    conn_type = (connection.conn_type or "").lower()
    if conn_type == "imap":
        settings = {
            **extra,
            "type": "imap",
            "host": connection.host,
            "port": connection.port,
            "user": connection.login,
            "password": connection.password,
        }
    elif conn_type in ("fs", "maildir"):
        settings = {**extra, "type": "maildir"}
    else:
        raise ValueError(
            f"Airflow connection {conn_id!r} has type {conn_type!r}: use 'imap', "
            "or 'fs' with the Maildir path in the extra field 'path'"
        )
    return source_from_config(settings)
