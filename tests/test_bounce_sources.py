"""Tests of the bounce sources against real Maildir folders and a real Dovecot."""

from __future__ import annotations

import hashlib
import imaplib
import json
import mailbox
import re
from pathlib import Path

import pytest

from net119.bounces import parse_bounce
from net119.bounces.sources import (
    AfterAck,
    BounceSourceError,
    ImapConfig,
    ImapSource,
    MaildirConfig,
    MaildirSource,
    RawMessage,
    UnknownMessageKey,
    source_from_airflow_connection,
    source_from_config,
)
from net119.devtools.imap_server import DovecotServer


SAMPLES_DIR = Path(__file__).parent / "data" / "bounces"
SAMPLE_NAMES = ["postfix_user_unknown", "docomo_user_unknown_sjis", "qmail_no_mailbox"]
CRLF_RE = re.compile(rb"\r\n|\r|\n")


def sample(name: str) -> bytes:
    return (SAMPLES_DIR / f"{name}.eml").read_bytes()


def expected_kind(name: str) -> str:
    expected = json.loads((SAMPLES_DIR / f"{name}.expected.json").read_text("utf-8"))
    return str(expected["kind"])


def sha256_key(raw: bytes) -> str:
    return "sha256:" + hashlib.sha256(raw).hexdigest()


# --- Maildir ---------------------------------------------------------------


@pytest.fixture
def maildir_path(tmp_path: Path) -> Path:
    """A Maildir with two samples in new/ and one flagged in cur/."""
    path = tmp_path / "bounces"
    box = mailbox.Maildir(path, factory=None, create=True)
    box.add(sample("postfix_user_unknown"))
    box.add(sample("docomo_user_unknown_sjis"))
    read_message = mailbox.MaildirMessage(sample("qmail_no_mailbox"))
    read_message.set_subdir("cur")
    read_message.add_flag("F")
    # MaildirMessage re-serialises the message, so the test reads the stored
    # bytes back instead of assuming them.
    box.add(read_message)
    return path


def stored_files(path: Path) -> list[Path]:
    return sorted(p for sub in ("new", "cur") for p in (path / sub).iterdir())


def test_maildir_source_yields_each_once(maildir_path: Path) -> None:
    on_disk = {
        sha256_key(p.read_bytes()): p.read_bytes() for p in stored_files(maildir_path)
    }
    (maildir_path / "tmp" / "1796.partial.host").write_bytes(
        b"From: still being delivered\n"
    )

    with MaildirSource(MaildirConfig(maildir_path)) as source:
        messages = list(source.messages())

    assert len(messages) == 3
    assert {message.key for message in messages} == set(on_disk)
    for message in messages:
        assert message.raw == on_disk[message.key]
    kinds = sorted(parse_bounce(message.raw).kind.value for message in messages)
    assert kinds == sorted(expected_kind(name) for name in SAMPLE_NAMES)


def test_maildir_source_ack_moves_to_processed(maildir_path: Path) -> None:
    before = sorted(p.read_bytes() for p in stored_files(maildir_path))

    with MaildirSource(MaildirConfig(maildir_path)) as source:
        for message in source.messages():
            source.acknowledge(message.key)
        second_pass = list(source.messages())

    assert second_pass == []
    assert stored_files(maildir_path) == []
    processed = maildir_path / ".processed"
    assert (processed / "maildirfolder").exists()
    moved = sorted((processed / "cur").iterdir())
    assert len(moved) == 3
    for path in moved:
        assert path.name.split(":2,")[1].count("S") == 1
    assert any(path.name.endswith(":2,FS") for path in moved)
    assert sorted(p.read_bytes() for p in moved) == before


def test_maildir_source_keeps_unacknowledged(maildir_path: Path) -> None:
    with MaildirSource(MaildirConfig(maildir_path)) as source:
        first_keys = [message.key for message in source.messages()]
        second_keys = [message.key for message in source.messages()]
        source.acknowledge(second_keys[0])
        third_keys = [message.key for message in source.messages()]

    assert second_keys == first_keys
    assert third_keys == second_keys[1:]
    assert len(stored_files(maildir_path)) == 2


def test_maildir_source_interrupted_pass_loses_nothing(maildir_path: Path) -> None:
    source = MaildirSource(MaildirConfig(maildir_path))

    with pytest.raises(RuntimeError):
        for message in source.messages():
            source.acknowledge(message.key)
            raise RuntimeError("recording failed after the first message")

    assert len(list(source.messages())) == 2
    assert len(stored_files(maildir_path)) == 2


def test_maildir_source_flag_mode(maildir_path: Path) -> None:
    config = MaildirConfig(maildir_path, after_ack=AfterAck.FLAG)

    with MaildirSource(config) as source:
        for message in source.messages():
            source.acknowledge(message.key)
        second_pass = list(source.messages())

    assert second_pass == []
    assert not (maildir_path / ".processed").exists()
    assert list((maildir_path / "new").iterdir()) == []
    names = sorted(path.name for path in (maildir_path / "cur").iterdir())
    assert len(names) == 3
    assert all(name.endswith((":2,S", ":2,FS")) for name in names)


def test_maildir_source_duplicates_yielded_once(tmp_path: Path) -> None:
    path = tmp_path / "bounces"
    box = mailbox.Maildir(path, factory=None, create=True)
    for _ in range(3):
        box.add(sample("postfix_user_unknown"))
    box.add(sample("qmail_no_mailbox"))

    with MaildirSource(MaildirConfig(path)) as source:
        keys = []
        for message in source.messages():
            keys.append(message.key)
            source.acknowledge(message.key)

    assert sorted(keys) == sorted(
        {
            sha256_key(sample("postfix_user_unknown")),
            sha256_key(sample("qmail_no_mailbox")),
        }
    )
    assert stored_files(path) == []
    assert len(list((path / ".processed" / "cur").iterdir())) == 4


def test_maildir_source_custom_processed_folder(maildir_path: Path) -> None:
    config = MaildirConfig(maildir_path, processed_folder="bounces-done")

    with MaildirSource(config) as source:
        for message in source.messages():
            source.acknowledge(message.key)

    assert len(list((maildir_path / ".bounces-done" / "cur").iterdir())) == 3


def test_maildir_source_unknown_key_raises(maildir_path: Path) -> None:
    with MaildirSource(MaildirConfig(maildir_path)) as source:
        list(source.messages())
        with pytest.raises(UnknownMessageKey):
            source.acknowledge("sha256:" + "0" * 64)


def test_maildir_source_rejects_plain_folder(tmp_path: Path) -> None:
    with pytest.raises(BounceSourceError, match="new/"):
        MaildirSource(MaildirConfig(tmp_path))


def test_maildir_config_rejects_nested_folder(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="processed folder"):
        MaildirConfig(tmp_path, processed_folder="a/b")


# --- IMAP ------------------------------------------------------------------


def imap_connection(server: DovecotServer) -> imaplib.IMAP4:
    connection = imaplib.IMAP4(server.host, server.port, timeout=10)
    connection.login(server.user, server.password)
    return connection


def append_samples(server: DovecotServer) -> list[bytes]:
    """Append the samples to INBOX and return them as the server stores them."""
    connection = imap_connection(server)
    stored = []
    for name in SAMPLE_NAMES:
        raw = sample(name)
        # Empty flags and date mean none, as None does.
        response = connection.append("INBOX", "", "", raw)
        assert response[0] == "OK"
        # IMAP stores messages with CRLF line ends; imaplib converts on APPEND.
        stored.append(CRLF_RE.sub(b"\r\n", raw))
    connection.logout()
    return stored


def inbox_uids(server: DovecotServer) -> list[int]:
    """Return the UIDs of the messages in INBOX, in ascending order."""
    connection = imap_connection(server)
    try:
        status, _data = connection.select("INBOX", readonly=True)
        assert status == "OK"
        status, data = connection.uid("SEARCH", "ALL")
        assert status == "OK"
        return sorted(int(uid) for uid in data[0].split())
    finally:
        connection.logout()


def mailbox_flags(server: DovecotServer, name: str) -> list[str]:
    connection = imap_connection(server)
    try:
        status, data = connection.select(name, readonly=True)
        assert status == "OK"
        if data[0] == b"0":
            return []
        _status, fetched = connection.fetch("1:*", "(FLAGS)")
        return [item.decode() for item in fetched if isinstance(item, bytes)]
    finally:
        connection.logout()


def imap_config(server: DovecotServer, **changes: object) -> ImapConfig:
    settings: dict[str, object] = {
        "host": server.host,
        "port": server.port,
        "user": server.user,
        "password": server.password,
        "ssl": False,
    }
    settings.update(changes)
    return ImapConfig(**settings)  # type: ignore[arg-type]


def test_imap_source_yields_each_once(imap_server: DovecotServer) -> None:
    stored = append_samples(imap_server)

    with ImapSource(imap_config(imap_server)) as source:
        messages = list(source.messages())
        uidvalidity = source.uidvalidity

    # UIDs keep growing across the tests of a session, because emptying
    # INBOX does not reset UIDNEXT, so the expected keys come from the server.
    uids = inbox_uids(imap_server)
    assert len(uids) == 3
    assert [message.raw for message in messages] == stored
    assert [message.key for message in messages] == [
        f"imap:{uidvalidity}:{uid}" for uid in uids
    ]
    kinds = [parse_bounce(message.raw).kind.value for message in messages]
    assert kinds == [expected_kind(name) for name in SAMPLE_NAMES]


def test_imap_source_read_sets_no_flag(imap_server: DovecotServer) -> None:
    append_samples(imap_server)

    with ImapSource(imap_config(imap_server)) as source:
        first_keys = [message.key for message in source.messages()]
    with ImapSource(imap_config(imap_server)) as source:
        second_keys = [message.key for message in source.messages()]

    assert second_keys == first_keys
    assert all("\\Seen" not in flags for flags in mailbox_flags(imap_server, "INBOX"))


def test_imap_source_ack_sets_seen(imap_server: DovecotServer) -> None:
    append_samples(imap_server)

    with ImapSource(imap_config(imap_server)) as source:
        messages = list(source.messages())
        source.acknowledge(messages[1].key)
        remaining = [message.key for message in source.messages()]

    assert remaining == [messages[0].key, messages[2].key]
    flags = mailbox_flags(imap_server, "INBOX")
    assert len(flags) == 3
    assert ["\\Seen" in item for item in flags] == [False, True, False]


def test_imap_source_ack_moves_to_processed(imap_server: DovecotServer) -> None:
    stored = append_samples(imap_server)
    config = imap_config(imap_server, processed_mailbox="processed")

    with ImapSource(config) as source:
        for message in source.messages():
            source.acknowledge(message.key)
        second_pass = list(source.messages())
    with ImapSource(config) as source:
        third_pass = list(source.messages())

    assert second_pass == []
    assert third_pass == []
    assert mailbox_flags(imap_server, "INBOX") == []
    moved_flags = mailbox_flags(imap_server, "processed")
    assert len(moved_flags) == 3
    assert all("\\Seen" in item for item in moved_flags)
    connection = imap_connection(imap_server)
    connection.select("processed", readonly=True)
    _status, fetched = connection.fetch("1:*", "(BODY.PEEK[])")
    connection.logout()
    moved = [item[1] for item in fetched if isinstance(item, tuple)]
    assert moved == stored


def test_imap_source_interrupted_pass_loses_nothing(imap_server: DovecotServer) -> None:
    append_samples(imap_server)
    config = imap_config(imap_server, processed_mailbox="processed")

    with pytest.raises(RuntimeError):
        with ImapSource(config) as source:
            for message in source.messages():
                source.acknowledge(message.key)
                raise RuntimeError("recording failed after the first message")
    with ImapSource(config) as source:
        remaining = list(source.messages())

    assert len(remaining) == 2
    assert len(mailbox_flags(imap_server, "processed")) == 1


def test_imap_source_rejects_stale_key(imap_server: DovecotServer) -> None:
    append_samples(imap_server)

    with ImapSource(imap_config(imap_server)) as source:
        message = next(iter(source.messages()))
        stale = "imap:1:" + message.key.rsplit(":", 1)[1]
        with pytest.raises(UnknownMessageKey, match="UIDVALIDITY"):
            source.acknowledge(stale)
        with pytest.raises(UnknownMessageKey, match="invalid"):
            source.acknowledge("sha256:abc")

    assert all("\\Seen" not in flags for flags in mailbox_flags(imap_server, "INBOX"))


def test_imap_source_wrong_password_fails(imap_server: DovecotServer) -> None:
    config = imap_config(imap_server, password="not-the-password")

    with ImapSource(config) as source:
        with pytest.raises(BounceSourceError, match="failed") as caught:
            list(source.messages())

    assert "not-the-password" not in str(caught.value)


def test_imap_source_missing_mailbox_fails(imap_server: DovecotServer) -> None:
    config = imap_config(imap_server, mailbox="NoSuchFolder")

    with ImapSource(config) as source:
        with pytest.raises(BounceSourceError, match="NoSuchFolder"):
            list(source.messages())


def test_imap_config_validation() -> None:
    with pytest.raises(ValueError, match="starttls"):
        ImapConfig(host="h", user="u", password="p", ssl=True, starttls=True)
    with pytest.raises(ValueError, match="ASCII"):
        ImapConfig(host="h", user="u", password="p", processed_mailbox="処理済み")
    assert ImapConfig(host="h", user="u", password="p").effective_port == 993
    assert ImapConfig(host="h", user="u", password="p", ssl=False).effective_port == 143
    secret = "s3cret-value"
    assert secret not in repr(ImapConfig(host="h", user="u", password=secret))


# --- Construction from settings ----------------------------------------------


def test_source_from_config_builds_both(tmp_path: Path, maildir_path: Path) -> None:
    maildir_source = source_from_config({"type": "maildir", "path": str(maildir_path)})
    imap_source = source_from_config(
        {
            "type": "imap",
            "host": "127.0.0.1",
            "user": "u",
            "password": "p",
            "ssl": "false",
        }
    )

    assert isinstance(maildir_source, MaildirSource)
    assert isinstance(imap_source, ImapSource)
    with pytest.raises(ValueError, match="password"):
        source_from_config({"type": "imap", "host": "127.0.0.1", "user": "u"})
    with pytest.raises(ValueError, match="'pop3'"):
        source_from_config({"type": "pop3"})
    with pytest.raises(ValueError, match="ssl"):
        source_from_config(
            {"type": "imap", "host": "h", "user": "u", "password": "p", "ssl": "maybe"}
        )


def test_source_from_airflow_imap_connection(
    imap_server: DovecotServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    append_samples(imap_server)
    connection = {
        "conn_type": "imap",
        "host": imap_server.host,
        "port": imap_server.port,
        "login": imap_server.user,
        "password": imap_server.password,
        "extra": {"ssl": False, "processed_mailbox": "processed"},
    }
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path / "airflow"))
    monkeypatch.setenv("AIRFLOW_CONN_NET119_BOUNCES", json.dumps(connection))

    with source_from_airflow_connection() as source:
        assert isinstance(source, ImapSource)
        for message in source.messages():
            source.acknowledge(message.key)

    assert len(mailbox_flags(imap_server, "processed")) == 3


def test_source_from_airflow_maildir_connection(
    maildir_path: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    connection = {
        "conn_type": "fs",
        "extra": {"path": str(maildir_path), "after_ack": "flag"},
    }
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path / "airflow"))
    monkeypatch.setenv("AIRFLOW_CONN_NET119_TEST_MAILDIR", json.dumps(connection))

    with source_from_airflow_connection("net119_test_maildir") as source:
        assert isinstance(source, MaildirSource)
        messages: list[RawMessage] = list(source.messages())

    assert len(messages) == 3
