"""Run a private Dovecot IMAP server for tests and demos.

The server uses Debian's ``dovecot-imapd`` package but none of its system
configuration: ``start_dovecot`` writes a configuration file into a new
temporary folder and starts ``dovecot -F -c FILE`` as a child process. It
listens on 127.0.0.1 only, on a free port, without TLS, and accepts
plaintext login for one user from a passwd-file. Mail is stored as Maildir
in the same folder. ``DovecotServer.stop`` ends the process and removes the
folder.

Dovecot refuses to run its mail processes as root. Started as root, the
server runs its login and internal processes as the package's ``dovenull``
and ``dovecot`` users and the mail processes as ``nobody``, so the folder is
made readable for them. Started as another user, everything runs as that user.
"""

from __future__ import annotations

import grp
import logging
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Self

log = logging.getLogger(__name__)

DOVECOT_PACKAGE_HINT = "install it with: apt-get install -y dovecot-imapd"


class DovecotUnavailable(RuntimeError):
    """Raised when the dovecot binary is not installed."""


def find_dovecot() -> str | None:
    """Return the path of the dovecot binary, or ``None`` when it is missing."""
    return shutil.which("dovecot") or (
        "/usr/sbin/dovecot" if os.access("/usr/sbin/dovecot", os.X_OK) else None
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class _Accounts:
    internal_user: str
    internal_group: str
    login_user: str
    mail_uid: int
    mail_gid: int


def _accounts() -> _Accounts:
    if os.geteuid() != 0:
        me = pwd.getpwuid(os.geteuid())
        group = grp.getgrgid(me.pw_gid).gr_name
        return _Accounts(me.pw_name, group, me.pw_name, me.pw_uid, me.pw_gid)
    nobody = pwd.getpwnam("nobody")
    internal = "dovecot" if _user_exists("dovecot") else "nobody"
    internal_group = grp.getgrgid(pwd.getpwnam(internal).pw_gid).gr_name
    login = "dovenull" if _user_exists("dovenull") else "nobody"
    return _Accounts(internal, internal_group, login, nobody.pw_uid, nobody.pw_gid)


def _config_text(base: Path, port: int, accounts: _Accounts) -> str:
    return f"""\
# Private test instance; no system configuration is included.
base_dir = {base}/run
state_dir = {base}/state
instance_name = net119-test-{port}
log_path = {base}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
default_internal_user = {accounts.internal_user}
default_internal_group = {accounts.internal_group}
default_login_user = {accounts.login_user}
first_valid_uid = {accounts.mail_uid}
last_valid_uid = {accounts.mail_uid}
mail_location = maildir:{base}/mail/%u
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {base}/users
}}
userdb {{
  driver = static
  args = uid={accounts.mail_uid} gid={accounts.mail_gid} home={base}/mail/%u
}}
# No chroot, which a server started by a user other than root cannot do.
service anvil {{
  chroot =
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service auth {{
  unix_listener auth-userdb {{
    mode = 0666
  }}
}}
"""


@dataclass
class DovecotServer:
    """A running private Dovecot instance and the account it serves."""

    host: str
    port: int
    user: str
    password: str = field(repr=False)
    base_dir: Path
    process: subprocess.Popen[bytes] = field(repr=False)

    @property
    def maildir(self) -> Path:
        """The user's Maildir on disk (created by Dovecot at first login)."""
        return self.base_dir / "mail" / self.user

    def log_text(self) -> str:
        """Return Dovecot's log file, for error messages."""
        try:
            return (self.base_dir / "dovecot.log").read_text(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        """Stop Dovecot and remove its folder; safe to call twice."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                log.warning(
                    "Dovecot (pid %d) did not stop in 10 s; killing it",
                    self.process.pid,
                )
                self.process.kill()
                self.process.wait(timeout=10)
        shutil.rmtree(self.base_dir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def _wait_until_ready(server: DovecotServer, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(
                f"dovecot exited with status {server.process.returncode} at start; "
                f"its log:\n{server.log_text()}"
            )
        try:
            with socket.create_connection(
                (server.host, server.port), timeout=1
            ) as probe:
                if probe.recv(64).startswith(b"* OK"):
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(
        f"dovecot did not accept connections on port {server.port} within {timeout} s; "
        f"its log:\n{server.log_text()}"
    )


def start_dovecot(
    user: str = "bounces", password: str | None = None, timeout: float = 15.0
) -> DovecotServer:
    """Start a private Dovecot on 127.0.0.1 and return it once it accepts connections.

    ``password`` defaults to a random one. Raises ``DovecotUnavailable`` when
    dovecot is not installed and ``RuntimeError`` when it does not start.
    """
    binary = find_dovecot()
    if binary is None:
        raise DovecotUnavailable(f"dovecot is not installed; {DOVECOT_PACKAGE_HINT}")
    password = password or secrets.token_urlsafe(12)
    accounts = _accounts()

    base = Path(tempfile.mkdtemp(prefix="net119-dovecot-"))
    # The mail and login processes run as other users when started as root.
    base.chmod(0o755)
    for name in ("run", "state", "mail"):
        (base / name).mkdir()
    os.chown(base / "mail", accounts.mail_uid, accounts.mail_gid)
    users_file = base / "users"
    users_file.write_text(f"{user}:{{PLAIN}}{password}\n")
    users_file.chmod(0o644)

    port = _free_port()
    config = base / "dovecot.conf"
    config.write_text(_config_text(base, port, accounts))
    process = subprocess.Popen(
        [binary, "-F", "-c", str(config)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    server = DovecotServer(
        host="127.0.0.1",
        port=port,
        user=user,
        password=password,
        base_dir=base,
        process=process,
    )
    try:
        _wait_until_ready(server, timeout)
    except BaseException:
        server.stop()
        raise
    log.info("Dovecot is running on 127.0.0.1:%d (pid %d)", port, process.pid)
    return server
