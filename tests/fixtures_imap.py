"""Pytest fixtures that run a real Dovecot IMAP server on 127.0.0.1.

Register the module as a plugin, in ``tests/conftest.py`` or in a test
module::

    pytest_plugins = ["fixtures_imap"]

``dovecot_server`` starts one private Dovecot for the test session (see
``net119.devtools.imap_server``) and stops it at the end. ``imap_server``
is the same server with the test user's mailboxes emptied before each test.
Dovecot comes from Debian's ``dovecot-imapd`` package, which
``scripts/install-system-packages.sh`` installs. Without it the fixtures fail
with the install command rather than skip, so a missing server is noticed.
"""

from __future__ import annotations

import imaplib
import re
from collections.abc import Iterator

import pytest

from net119.devtools.imap_server import DovecotServer, DovecotUnavailable, start_dovecot

_LIST_NAME_RE = re.compile(rb'^\([^)]*\) (?:"[^"]*"|NIL) (?P<name>.+)$')


@pytest.fixture(scope="session")
def dovecot_server() -> Iterator[DovecotServer]:
    """Start a private Dovecot for the session and stop it afterwards."""
    try:
        server = start_dovecot()
    except DovecotUnavailable as exc:
        pytest.fail(str(exc))
    try:
        yield server
    finally:
        server.stop()


def empty_mailboxes(server: DovecotServer) -> None:
    """Delete every folder but INBOX and every message in INBOX."""
    connection = imaplib.IMAP4(server.host, server.port, timeout=10)
    try:
        connection.login(server.user, server.password)
        _status, listing = connection.list()
        for line in listing:
            if not isinstance(line, bytes):
                continue
            match = _LIST_NAME_RE.match(line)
            if match is None:
                continue
            name = match.group("name").decode()
            if name.strip('"').upper() != "INBOX":
                connection.delete(name)
        _status, count = connection.select("INBOX")
        if count and count[0] not in (b"0", None):
            connection.store("1:*", "+FLAGS.SILENT", "(\\Deleted)")
            connection.expunge()
    finally:
        connection.logout()


@pytest.fixture
def imap_server(dovecot_server: DovecotServer) -> DovecotServer:
    """The session's Dovecot with empty mailboxes for this test."""
    empty_mailboxes(dovecot_server)
    return dovecot_server
