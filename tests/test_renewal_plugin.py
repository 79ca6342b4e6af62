"""The renewal page served by its two servers, as real processes.

``airflow api-server`` serves it through the Airflow plugin, and
``python -m net119.web`` serves it alone with uvicorn.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx

from conftest import free_port
from factories import add_station, add_user, jst
from test_renewal_web import issue_link

AIRFLOW = Path(sys.executable).parent / "airflow"
STARTUP_TIMEOUT = 120.0


def wait_until_serving(url: str, server: subprocess.Popen, log_file: Path) -> httpx.Response:
    """Poll ``url`` until the server responds, and return that first response."""
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while True:
        if server.poll() is not None:
            raise AssertionError(
                f"airflow api-server exited with {server.returncode}:\n"
                + log_file.read_text(errors="replace")[-3000:]
            )
        try:
            return httpx.get(url, timeout=5)
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, f"api-server not serving after {STARTUP_TIMEOUT} s"
        time.sleep(0.5)


def test_renewal_plugin_served_by_api_server(airflow_env, db, tmp_path) -> None:
    add_station(db)
    add_user(db, 1, jst(2027, 2, 2, 10), name="プラグイン 確認")
    token, reminder_id = issue_link(db, 1)
    port = free_port()
    env = dict(os.environ)
    env.pop("NET119_DATABASE_URL", None)  # the page must use the net119_db connection
    env["NET119_WEB_SECRET"] = "plugin-test-secret-0123456789abcdefghij"
    env["NET119_RENEWAL_BASE_URL"] = f"http://127.0.0.1:{port}/net119/renew"
    log_file = tmp_path / "api-server.log"
    page_url = f"http://127.0.0.1:{port}/net119/renew/{token}"

    with log_file.open("wb") as log:
        server = subprocess.Popen(
            [str(AIRFLOW), "api-server", "--host", "127.0.0.1", "--port", str(port),
             "--workers", "1"],
            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        confirmation = wait_until_serving(page_url, server, log_file)
        form_token = re.search(
            r'name="csrf_token" value="([^"]+)"', confirmation.text
        ).group(1)
        posted = httpx.post(page_url, data={"csrf_token": form_token}, timeout=10)
        malformed = httpx.get(f"http://127.0.0.1:{port}/net119/renew/x", timeout=10)
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)

    assert confirmation.status_code == 200
    assert "プラグイン 確認 様" in confirmation.text
    assert confirmation.headers["referrer-policy"] == "no-referrer"
    assert "frame-ancestors 'none'" in confirmation.headers["content-security-policy"]
    assert posted.status_code == 200
    assert "更新が完了しました" in posted.text
    assert malformed.status_code == 400
    with db.cursor() as cur:
        cur.execute("SELECT outcome FROM net119.reminders WHERE id = %s", (reminder_id,))
        assert cur.fetchone() == ("confirmed",)
        cur.execute("SELECT via, reminder_id FROM net119.renewals WHERE user_id = 1")
        assert cur.fetchall() == [("link", reminder_id)]
    db.rollback()


def test_renewal_standalone_server_hides_tokens(db, db_url, tmp_path) -> None:
    add_station(db)
    add_user(db, 1, jst(2027, 2, 2, 10))
    token, _ = issue_link(db, 1)
    port = free_port()
    env = dict(os.environ)
    env["NET119_WEB_SECRET"] = "standalone-test-secret-0123456789abcdefgh"
    log_file = tmp_path / "standalone.log"
    page_url = f"http://127.0.0.1:{port}/net119/renew/{token}"

    with log_file.open("wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "net119.web", "--host", "127.0.0.1", "--port", str(port),
             "--database-url", db_url],
            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        confirmation = wait_until_serving(page_url, server, log_file)
    finally:
        server.terminate()
        server.wait(timeout=30)

    assert confirmation.status_code == 200
    assert "server" not in confirmation.headers
    access_log = log_file.read_text(errors="replace")
    assert '"GET /net119/renew/*** HTTP/1.1" 200' in access_log
    assert token not in access_log
