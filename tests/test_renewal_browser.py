"""The renewal flow in a real headless Chromium at a 360 x 740 phone viewport.

The daily DAG mails a reminder to the aiosmtpd server, and the test takes the
link from the received mail. Debian's Chromium (``/usr/bin/chromium``, from
``scripts/install-system-packages.sh``), driven by Playwright, opens it against
the app served by uvicorn on 127.0.0.1. JavaScript is disabled in the browser
context, so the flow proves that the page needs none. The page checks run
through Playwright's evaluate, which is not page script.
Screenshots go to ``$NET119_SCREENSHOT_DIR`` or the test's temporary folder.
"""

from __future__ import annotations

import datetime as dt
import email
import os
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from email import policy
from pathlib import Path

import pytest

from conftest import free_port
from factories import add_station, add_user
from net119 import db as net119_db
from net119.config import Settings
from net119.schedule import TOKYO, renewed_expiry, tokyo_date
from net119.web import WebSettings, create_app

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PHONE = {"width": 360, "height": 740}
ALREADY_DONE = "更新手続きはすでに完了しています"

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="Chromium is missing: run scripts/install-system-packages.sh"
)

# Runs in the page through Playwright (CDP), not as page script. Collects the
# language, controls without an accessible name, and the contrast ratio
# (WCAG 2 relative luminance) and font size of every element with text.
PAGE_AUDIT_JS = """
() => {
  const parse = (value) => {
    const numbers = value.match(/[\\d.]+/g).map(Number);
    return {r: numbers[0], g: numbers[1], b: numbers[2],
            a: numbers.length > 3 ? numbers[3] : 1};
  };
  const channel = (v) => {
    v = v / 255;
    return v <= 0.04045 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4);
  };
  const luminance = (c) =>
    0.2126 * channel(c.r) + 0.7152 * channel(c.g) + 0.0722 * channel(c.b);
  const background = (element) => {
    for (let e = element; e; e = e.parentElement) {
      const color = parse(getComputedStyle(e).backgroundColor);
      if (color.a > 0) return color;
    }
    return {r: 255, g: 255, b: 255, a: 1};
  };
  const unnamed = [];
  for (const control of document.querySelectorAll(
      "button, input:not([type=hidden]), select, textarea, a[href]")) {
    const labels = control.labels ? [...control.labels].map((l) => l.textContent) : [];
    const name = (control.getAttribute("aria-label") || labels.join(" ") ||
                  control.textContent || control.value || "").trim();
    if (!name) unnamed.push(control.outerHTML.slice(0, 80));
  }
  const texts = [];
  const seen = new Set();
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const element = walker.currentNode.parentElement;
    if (!walker.currentNode.textContent.trim() || seen.has(element)) continue;
    seen.add(element);
    const style = getComputedStyle(element);
    if (style.display === "none" || style.visibility === "hidden") continue;
    const fg = luminance(parse(style.color));
    const bg = luminance(background(element));
    texts.push({
      text: element.textContent.trim().slice(0, 24),
      ratio: (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05),
      size: parseFloat(style.fontSize),
    });
  }
  return {
    lang: document.documentElement.getAttribute("lang"),
    scripts: document.scripts.length,
    headings: [...document.querySelectorAll("h1,h2,h3,h4,h5,h6")].map(
      (h) => Number(h.tagName[1])),
    unnamed: unnamed,
    texts: texts,
    scrollWidth: document.scrollingElement.scrollWidth,
  };
}
"""


def run_dag(day: dt.date) -> None:
    """Run the daily DAG for Asia/Tokyo date ``day`` at its scheduled 09:00 JST."""
    from airflow.dag_processing.dagbag import DagBag

    dagbag = DagBag(dag_folder="dags/net119_daily_reminders.py")
    dag = dagbag.get_dag("net119_daily_reminders")
    logical = dt.datetime.combine(day, dt.time(0, 0), tzinfo=dt.UTC)
    dag_run = dag.test(logical_date=logical)
    assert dag_run.state == "success", f"run for {day} ended {dag_run.state}"


@contextmanager
def serve(app, port: int) -> Iterator[None]:
    """Serve ``app`` with uvicorn on 127.0.0.1:``port`` in a thread."""
    import uvicorn

    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", lifespan="off",
        proxy_headers=False,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive(), "uvicorn stopped while starting"
        assert time.monotonic() < deadline, "uvicorn did not start within 20 s"
        time.sleep(0.05)
    try:
        yield
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def renewal_link_from(mail_data: bytes) -> str:
    parsed = email.message_from_bytes(mail_data, policy=policy.default)
    body = parsed.get_body(("plain",)).get_content()
    links = re.findall(r"http://127\.0\.0\.1:\d+/net119/renew/[A-Za-z0-9_-]+", body)
    assert len(links) == 1, f"expected one renewal link in the mail, found {len(links)}"
    return links[0]


def database_state(conn) -> dict[str, list[tuple]]:
    with conn.cursor() as cur:
        cur.execute("SELECT id, expires_at, status, updated_at FROM net119.users ORDER BY id")
        users = cur.fetchall()
        cur.execute("SELECT id, outcome, confirmed_at FROM net119.reminders ORDER BY id")
        reminders = cur.fetchall()
        cur.execute(
            "SELECT user_id, renewed_at, old_expires_at, new_expires_at, via, reminder_id "
            "FROM net119.renewals ORDER BY id"
        )
        renewals = cur.fetchall()
    conn.rollback()
    return {"users": users, "reminders": reminders, "renewals": renewals}


def audit(page, label: str) -> dict:
    """Check the page against the phone layout and accessibility rules."""
    report = page.evaluate(PAGE_AUDIT_JS)
    assert report["lang"] == "ja", label
    assert report["scripts"] == 0, label
    assert report["unnamed"] == [], label
    assert report["headings"][0] == 1, label
    for previous, current in zip(report["headings"], report["headings"][1:], strict=False):
        assert current <= previous + 1, f"{label}: heading h{current} after h{previous}"
    assert report["scrollWidth"] <= PHONE["width"], f"{label}: horizontal scroll"
    for text in report["texts"]:
        assert text["ratio"] >= 4.5, f"{label}: contrast {text['ratio']:.2f} of {text['text']!r}"
        assert text["size"] >= 18, f"{label}: font size {text['size']} of {text['text']!r}"
    return report


def assert_visible_focus(page) -> None:
    """Tab to the button and check that it shows a focus outline."""
    button = page.get_by_role("button", name="更新する")
    for _ in range(10):
        page.keyboard.press("Tab")
        if button.evaluate("b => b === document.activeElement"):
            break
    else:
        pytest.fail("the 更新する button cannot be reached with Tab")
    outline = button.evaluate(
        "b => { const s = getComputedStyle(b); return [s.outlineStyle, s.outlineWidth]; }"
    )
    assert outline[0] != "none"
    assert float(outline[1].removesuffix("px")) >= 2
    box = button.bounding_box()
    assert box["height"] >= 44
    assert box["x"] >= 0
    assert box["x"] + box["width"] <= PHONE["width"]


@pytest.fixture
def screenshot_dir(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("NET119_SCREENSHOT_DIR") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_renewal_flow_in_browser(airflow_env, db_url, monkeypatch, screenshot_dir) -> None:
    from playwright.sync_api import expect, sync_playwright

    smtp = airflow_env
    port = free_port()
    monkeypatch.setenv("NET119_RENEWAL_BASE_URL", f"http://127.0.0.1:{port}/net119/renew")
    conn = net119_db.connect(db_url)
    try:
        # The 60日前 step falls due today for an expiry 60 days ahead.
        today = tokyo_date(dt.datetime.now(dt.UTC))
        expires_at = dt.datetime.combine(today + dt.timedelta(days=60), dt.time(10, 0),
                                         tzinfo=TOKYO)
        add_station(conn, name="横浜市消防局")
        add_user(conn, 1, expires_at, name="山田 花子")
        run_dag(today)

        # Other steps of the DAG may mail the station too; take the user's mail.
        [mail] = [m for m in smtp.messages if m.recipients == ["user1@docomo.ne.jp"]]
        link = renewal_link_from(mail.data)
        with conn.cursor() as cur:
            cur.execute("SELECT id FROM net119.reminders WHERE user_id = 1 AND outcome = 'sent'")
            [(reminder_id,)] = cur.fetchall()
        conn.rollback()

        from starlette.applications import Starlette
        from starlette.routing import Mount

        renewal_app = create_app(
            WebSettings(secret=b"browser-test-secret-0123456789abcdef", core=Settings.from_env()),
            db_url,
        )
        app = Starlette(routes=[Mount("/net119", app=renewal_app)])
        posts: list[dict[str, str]] = []

        with serve(app, port), sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
            )
            context = browser.new_context(
                viewport=PHONE, is_mobile=True, has_touch=True, locale="ja-JP",
                java_script_enabled=False,
            )
            context.on(
                "request",
                lambda request: posts.append(request.all_headers())
                if request.method == "POST" else None,
            )
            try:
                # 1. Opening the link, as a mail scanner would, changes nothing.
                before = database_state(conn)
                page = context.new_page()
                response = page.goto(link)
                assert response.status == 200
                assert database_state(conn) == before
                expect(page.get_by_role("heading", level=1)).to_have_text(
                    "NET119の利用を更新します"
                )
                assert "山田 花子 様" in page.content()
                audit(page, "confirmation page")
                assert_visible_focus(page)
                page.screenshot(path=str(screenshot_dir / "renewal_confirm.png"), full_page=True)

                # A second tab keeps the form, to be sent again after the renewal.
                stale_page = context.new_page()
                stale_page.goto(link)

                # 2. The button renews once.
                page.get_by_role("button", name="更新する").click()
                expect(page.get_by_role("heading", level=1)).to_have_text("更新が完了しました")
                audit(page, "done page")
                page.screenshot(path=str(screenshot_dir / "renewal_done.png"), full_page=True)
                after = database_state(conn)
                [(user_id, renewed_at, old, new, via, renewed_reminder)] = after["renewals"]
                assert (user_id, via, renewed_reminder) == (1, "link", reminder_id)
                assert old == expires_at
                assert new == renewed_expiry(expires_at, renewed_at)
                assert after["users"][0][1] == new
                assert [r[1] for r in after["reminders"] if r[0] == reminder_id] == ["confirmed"]

                # 3. Back and submit again, and a double click on the stale tab.
                page.go_back()
                # Chromium reloads the page (no-store), or restores the old form.
                again = page.get_by_role("button", name="更新する")
                if again.count():
                    again.click()
                expect(page.get_by_role("heading", level=1)).to_have_text(ALREADY_DONE)
                stale_page.get_by_role("button", name="更新する").dblclick()
                expect(stale_page.get_by_role("heading", level=1)).to_have_text(ALREADY_DONE)
                audit(stale_page, "already-done page")
                stale_page.screenshot(
                    path=str(screenshot_dir / "renewal_already_done.png"), full_page=True
                )
                assert database_state(conn)["renewals"] == after["renewals"]
                assert database_state(conn)["users"] == after["users"]

                # 4. A damaged link gets a readable error page.
                error_page = context.new_page()
                response = error_page.goto(link[:-4] + "AAAA")
                assert response.status == 404
                audit(error_page, "unknown link page")
                error_page.screenshot(
                    path=str(screenshot_dir / "renewal_unknown.png"), full_page=True
                )
            finally:
                context.close()
                browser.close()

        # Under Referrer-Policy: no-referrer, Chromium sends the form with
        # Origin: null and without Referer, while Sec-Fetch-Site is still same-origin.
        assert len(posts) >= 2
        for headers in posts:
            assert headers.get("origin") == "null"
            assert "referer" not in headers
            assert headers.get("sec-fetch-site") == "same-origin"
        print(f"screenshots in {screenshot_dir}")
    finally:
        conn.close()
