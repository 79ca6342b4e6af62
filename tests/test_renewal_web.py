"""The renewal pages against a real PostgreSQL, through FastAPI's TestClient."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import logging
import os
import re
import threading
from collections.abc import Callable, Iterator
from html.parser import HTMLParser
from urllib.parse import urlsplit, urlunsplit

import pytest
from psycopg2 import sql
from starlette.testclient import TestClient

from conftest import free_port
from factories import add_station, add_user, jst
from net119 import sqlfiles, transitions
from net119.config import Settings
from net119.mail.compose import new_renewal_token
from net119.schedule import renewed_expiry
from net119.web import WebSettings, create_app
from net119.web.security import (
    FormTokens,
    RedactLinkTokens,
    is_valid_link_token,
)
from net119.web.settings import parse_networks

UTC = dt.UTC
SECRET = b"test-secret-for-the-renewal-form-0123456789"
BASE_URL = "http://testserver/renew"
SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "cache-control": "no-store",
}


def web_settings(**overrides: object) -> WebSettings:
    values: dict[str, object] = {
        "secret": SECRET,
        "core": Settings(renewal_base_url=BASE_URL),
    }
    values.update(overrides)
    return WebSettings(**values)  # type: ignore[arg-type]


@pytest.fixture
def make_client(db_url: str) -> Iterator[Callable[..., TestClient]]:
    """Return a factory of TestClients on apps bound to this test's database."""
    apps = []

    def make(settings: WebSettings | None = None, *, database_url: str | None = None,
             client: tuple[str, int] = ("203.0.113.10", 40000)) -> TestClient:
        app = create_app(settings or web_settings(), database_url or db_url)
        apps.append(app)
        return TestClient(app, client=client, follow_redirects=False)

    yield make
    for app in apps:
        app.state.services.close()


@pytest.fixture
def client(make_client: Callable[..., TestClient]) -> TestClient:
    return make_client()


@pytest.fixture
def conn(db):
    add_station(db)
    return db


def issue_link(conn, user_id: int, *, offset: int = -60, outcome: str = "sent",
               cycle: dt.datetime | None = None, sent_at: dt.datetime | None = None,
               ) -> tuple[str, int]:
    """Insert a reminder of ``user_id`` with a renewal token; return (token, reminder id)."""
    token, token_hash = new_renewal_token()
    with conn.cursor() as cur:
        cur.execute(
            """
            INSERT INTO net119.reminders (
                user_id, cycle_expires_at, offset_days, kind, outcome, recipient,
                sent_at, message_id
            )
            SELECT id, coalesce(%s, expires_at), %s, 'auto', %s, email,
                   coalesce(%s, now()), %s
            FROM net119.users WHERE id = %s
            RETURNING id
            """,
            (cycle, offset, outcome, sent_at, f"<{token[:12]}@test>", user_id),
        )
        reminder_id = cur.fetchone()[0]
        cur.execute(
            "INSERT INTO net119.renewal_tokens (token_hash, reminder_id) VALUES (%s, %s)",
            (token_hash, reminder_id),
        )
    conn.commit()
    return token, reminder_id


def snapshot(conn) -> dict[str, list[tuple]]:
    """Return every row that a renewal could change."""
    queries = {
        "users": "SELECT id, expires_at, status, lapse_reason, lapsed_at, updated_at "
                 "FROM net119.users ORDER BY id",
        "reminders": "SELECT id, outcome, confirmed_at, outcome_at FROM net119.reminders "
                     "ORDER BY id",
        "renewals": "SELECT id, user_id, reminder_id FROM net119.renewals ORDER BY id",
        "status_events": "SELECT id, user_id, new_status FROM net119.status_events ORDER BY id",
    }
    result = {}
    with conn.cursor() as cur:
        for name, query in queries.items():
            cur.execute(query)
            result[name] = cur.fetchall()
    conn.rollback()
    return result


def renewals_of(conn, user_id: int) -> list[tuple]:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT renewed_at, old_expires_at, new_expires_at, via, reminder_id "
            "FROM net119.renewals WHERE user_id = %s ORDER BY id",
            (user_id,),
        )
        rows = cur.fetchall()
    conn.rollback()
    return rows


def reminder_state(conn, reminder_id: int) -> tuple:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT outcome, confirmed_at IS NOT NULL FROM net119.reminders WHERE id = %s",
            (reminder_id,),
        )
        row = cur.fetchone()
    conn.rollback()
    return row


def user_expiry(conn, user_id: int) -> dt.datetime:
    with conn.cursor() as cur:
        cur.execute("SELECT expires_at FROM net119.users WHERE id = %s", (user_id,))
        value = cur.fetchone()[0]
    conn.rollback()
    return value


def form_token_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "the page has no csrf_token field"
    return match.group(1)


def open_and_confirm(client: TestClient, token: str, **headers: str):
    page = client.get(f"/renew/{token}")
    assert page.status_code == 200
    return client.post(
        f"/renew/{token}", data={"csrf_token": form_token_of(page.text)}, headers=headers
    )


class _Outline(HTMLParser):
    """Collect the tags and headings of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.headings: list[int] = []
        self.html_lang: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag == "html":
            self.html_lang = dict(attrs).get("lang")
        if re.fullmatch(r"h[1-6]", tag):
            self.headings.append(int(tag[1]))


def outline(html: str) -> _Outline:
    parser = _Outline()
    parser.feed(html)
    return parser


# --- GET: the confirmation page -------------------------------------------


def test_confirmation_get_changes_nothing(conn, client) -> None:
    add_user(conn, 1, jst(2027, 2, 2, 10))
    token, _ = issue_link(conn, 1)
    before = snapshot(conn)

    response = client.get(f"/renew/{token}")
    head = client.head(f"/renew/{token}")

    assert response.status_code == 200
    assert head.status_code == 200
    assert snapshot(conn) == before


def test_confirmation_shows_station_expiry_button(conn, client) -> None:
    add_user(conn, 1, jst(2027, 2, 2, 10), name="山田 太郎")
    token, _ = issue_link(conn, 1)

    html = client.get(f"/renew/{token}").text

    assert "山田 太郎 様" in html
    assert "横浜市消防局" in html
    assert "令和9年（2027年）2月2日 10時00分" in html
    assert '<button type="submit" class="renew-button">更新する</button>' in html
    assert "緊急通報" in html
    assert 'method="post"' in html


def test_confirmation_hides_contact_data(conn, client) -> None:
    add_user(conn, 1, jst(2027, 2, 2, 10), email="hanako.private@docomo.ne.jp")
    with conn.cursor() as cur:
        cur.execute(
            "UPDATE net119.users SET phone = '090-1111-2222', fax = '045-999-0000', "
            "postal_code = '231-0001', postal_address = '横浜市中区新港1-2-3' WHERE id = 1"
        )
    conn.commit()
    token, _ = issue_link(conn, 1)

    html = client.get(f"/renew/{token}").text

    for private in ("hanako.private", "090-1111-2222", "045-999-0000", "231-0001", "新港"):
        assert private not in html


def test_confirmation_escapes_user_name(conn, client) -> None:
    add_user(conn, 1, jst(2027, 2, 2, 10), name="<script>alert(1)</script>")
    token, _ = issue_link(conn, 1)

    html = client.get(f"/renew/{token}").text

    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script" not in html
    assert "script" not in outline(html).tags


def test_confirmation_page_structure(conn, client) -> None:
    add_user(conn, 1, jst(2027, 2, 2, 10))
    token, _ = issue_link(conn, 1)

    html = client.get(f"/renew/{token}").text
    page = outline(html)

    assert page.html_lang == "ja"
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in html
    assert page.headings[0] == 1
    assert page.headings.count(1) == 1
    # Headings never skip a level on the way down.
    for previous, current in zip(page.headings, page.headings[1:], strict=False):
        assert current <= previous + 1
    assert "script" not in page.tags


def test_confirmation_mentions_lapsed_state(conn, client) -> None:
    now = dt.datetime.now(UTC)
    add_user(conn, 1, now - dt.timedelta(days=40))
    token, _ = issue_link(conn, 1, offset=30)
    transitions.apply_expiry_transitions(conn, now=now)

    html = client.get(f"/renew/{token}").text

    assert "いまは「失効中」です" in html


# --- POST: the renewal ---------------------------------------------------


def test_renewal_post_renews_once(conn, client) -> None:
    add_user(conn, 1, jst(2027, 2, 2, 10))
    token, reminder_id = issue_link(conn, 1)

    response = open_and_confirm(client, token)

    assert response.status_code == 200
    assert "更新が完了しました" in response.text
    assert "令和10年（2028年）2月2日 10時00分" in response.text
    [(renewed_at, old, new, via, renewed_reminder)] = renewals_of(conn, 1)
    assert via == "link"
    assert renewed_reminder == reminder_id
    assert old == jst(2027, 2, 2, 10)
    assert new == renewed_expiry(old, renewed_at)
    assert user_expiry(conn, 1) == jst(2028, 2, 2, 10)
    assert reminder_state(conn, reminder_id) == ("confirmed", True)
    with conn.cursor() as cur:
        cur.execute("SELECT outcome FROM net119.reminder_history WHERE id = %s", (reminder_id,))
        assert cur.fetchone() == ("confirmed",)
    conn.rollback()


def test_renewal_double_post_renews_once(conn, client) -> None:
    add_user(conn, 1, jst(2027, 2, 2, 10))
    token, _ = issue_link(conn, 1)
    page = client.get(f"/renew/{token}")
    form = {"csrf_token": form_token_of(page.text)}

    first = client.post(f"/renew/{token}", data=form)
    second = client.post(f"/renew/{token}", data=form)

    assert first.status_code == 200
    assert second.status_code == 200
    assert "更新手続きはすでに完了しています" in second.text
    assert "令和10年（2028年）2月2日 10時00分" in second.text
    assert len(renewals_of(conn, 1)) == 1
    assert user_expiry(conn, 1) == jst(2028, 2, 2, 10)


def test_renewal_concurrent_posts_renew_once(conn, make_client) -> None:
    add_user(conn, 1, jst(2027, 2, 2, 10))
    token, _ = issue_link(conn, 1)
    first_client = make_client()
    form = {"csrf_token": form_token_of(first_client.get(f"/renew/{token}").text)}
    app = first_client.app
    texts: list[str] = []
    barrier = threading.Barrier(4)

    def submit() -> None:
        with TestClient(app, client=("203.0.113.10", 40001)) as own_client:
            barrier.wait()
            texts.append(own_client.post(f"/renew/{token}", data=form).text)

    threads = [threading.Thread(target=submit) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert len(texts) == 4
    assert sum("更新が完了しました" in text for text in texts) == 1
    assert sum("更新手続きはすでに完了しています" in text for text in texts) == 3
    assert len(renewals_of(conn, 1)) == 1
    assert user_expiry(conn, 1) == jst(2028, 2, 2, 10)


def test_renewal_replayed_get_shows_done(conn, client) -> None:
    add_user(conn, 1, jst(2027, 2, 2, 10))
    token, _ = issue_link(conn, 1)
    open_and_confirm(client, token)
    before = snapshot(conn)

    replay = client.get(f"/renew/{token}")

    assert replay.status_code == 200
    assert "更新手続きはすでに完了しています" in replay.text
    assert "csrf_token" not in replay.text
    assert snapshot(conn) == before


def test_renewal_reactivates_lapsed_user(conn, client) -> None:
    now = dt.datetime.now(UTC)
    expired = now - dt.timedelta(days=40)
    add_user(conn, 1, expired)
    # The -10 mail arrived; the 当日 mail bounced, so the user lapses as 不達.
    token, reminder_id = issue_link(conn, 1, offset=-10, sent_at=expired - dt.timedelta(days=10))
    issue_link(conn, 1, offset=0, outcome="undeliverable", sent_at=expired)
    transitions.apply_expiry_transitions(conn, now=now)
    with conn.cursor() as cur:
        cur.execute("SELECT status, lapse_reason FROM net119.users WHERE id = 1")
        assert cur.fetchone() == ("lapsed", "undeliverable")
        cur.execute("SELECT call_back, mail_management FROM net119.user_capabilities "
                    "WHERE user_id = 1")
        assert cur.fetchone() == (False, False)
    conn.rollback()

    response = open_and_confirm(client, token)

    assert response.status_code == 200
    assert "「失効中」から「利用中」にもどりました" in response.text
    with conn.cursor() as cur:
        cur.execute("SELECT status, lapse_reason, lapsed_at FROM net119.users WHERE id = 1")
        assert cur.fetchone() == ("active", None, None)
        cur.execute(
            "SELECT emergency_call, practice_call, call_back, mail_management "
            "FROM net119.user_capabilities WHERE user_id = 1"
        )
        assert cur.fetchone() == (True, True, True, True)
        cur.execute(
            "SELECT old_status, new_status, old_reason, new_reason, cause "
            "FROM net119.status_events WHERE user_id = 1 ORDER BY id DESC LIMIT 1"
        )
        assert cur.fetchone() == ("lapsed", "active", "undeliverable", None, "renewed via link")
    conn.rollback()
    [(renewed_at, old, new, _, _)] = renewals_of(conn, 1)
    assert old == expired
    # Renewing after the expiry gives a full year from the renewal.
    assert new == renewed_expiry(expired, renewed_at)
    assert new > now + dt.timedelta(days=364)
    assert reminder_state(conn, reminder_id) == ("confirmed", True)


# --- Links that cannot renew ------------------------------------------------


def test_renewal_finished_cycle_gone(conn, client) -> None:
    add_user(conn, 1, jst(2027, 2, 2, 10))
    old_token, _ = issue_link(conn, 1, cycle=jst(2026, 2, 2, 10), offset=-30)
    form = {"csrf_token": FormTokens(SECRET, 3600).issue(old_token)}
    before = snapshot(conn)

    shown = client.get(f"/renew/{old_token}")
    posted = client.post(f"/renew/{old_token}", data=form)

    for response in (shown, posted):
        assert response.status_code == 410
        assert "このリンクは使えません" in response.text
        assert "前の期間のご案内" in response.text
        assert "Traceback" not in response.text
    assert snapshot(conn) == before


def test_renewal_sibling_link_after_renewal_gone(conn, client) -> None:
    add_user(conn, 1, jst(2027, 2, 2, 10))
    first_token, _ = issue_link(conn, 1, offset=-90)
    second_token, second_id = issue_link(conn, 1, offset=-60)
    open_and_confirm(client, second_token)

    response = client.get(f"/renew/{first_token}")

    assert response.status_code == 410
    assert "いまは「利用中」です" in response.text
    assert "令和10年（2028年）2月2日 10時00分" in response.text
    assert len(renewals_of(conn, 1)) == 1
    assert reminder_state(conn, second_id) == ("confirmed", True)


def test_renewal_unknown_token_not_found(conn, client) -> None:
    add_user(conn, 1, jst(2027, 2, 2, 10))
    issue_link(conn, 1)
    unknown, _ = new_renewal_token()
    form = {"csrf_token": FormTokens(SECRET, 3600).issue(unknown)}
    before = snapshot(conn)

    shown = client.get(f"/renew/{unknown}")
    posted = client.post(f"/renew/{unknown}", data=form)

    for response in (shown, posted):
        assert response.status_code == 404
        assert "このリンクは見つかりません" in response.text
    assert snapshot(conn) == before


@pytest.mark.parametrize(
    "token",
    [
        "short",
        "A" * 31,
        "A" * 33,
        "A" * 31 + "!",
        "A" * 31 + "%2E",
        "あ" * 32,
        "A" * 500,
    ],
)
def test_renewal_malformed_token_bad_request(conn, client, token: str) -> None:
    response = client.get(f"/renew/{token}")

    assert response.status_code == 400
    assert "リンクが正しくありません" in response.text
    assert response.headers["content-type"].startswith("text/html")


def test_renewal_malformed_token_skips_database(make_client) -> None:
    unreachable = f"postgresql://postgres@127.0.0.1:{free_port()}/none?connect_timeout=2"
    client = make_client(database_url=unreachable)

    malformed = client.get("/renew/not-a-token")
    well_formed = client.get(f"/renew/{new_renewal_token()[0]}")

    assert malformed.status_code == 400
    assert well_formed.status_code == 503
    assert "ただいま手続きができません" in well_formed.text
    assert "Traceback" not in well_formed.text


def test_unrouted_paths_answer_in_japanese(client) -> None:
    missing = client.get("/renew/")
    wrong_method = client.put(f"/renew/{'A' * 32}")

    assert missing.status_code == 404
    assert "このページはありません" in missing.text
    assert wrong_method.status_code == 405
    assert "このページはありません" in wrong_method.text


# --- Forged forms -------------------------------------------------------------


def forged_cases(token: str, other_token: str) -> list[tuple[str, dict, dict]]:
    valid = FormTokens(SECRET, 3600).issue(token)
    return [
        ("missing form token", {}, {}),
        ("empty form token", {"csrf_token": ""}, {}),
        ("garbage form token", {"csrf_token": "123.abc"}, {}),
        ("superscript digit in issued time", {"csrf_token": "²123.abc"}, {}),
        ("Arabic-Indic digits in issued time", {"csrf_token": "١٢٣.abc"}, {}),
        ("token of another secret",
         {"csrf_token": FormTokens(b"another-secret-" * 3, 3600).issue(token)}, {}),
        ("token of another link",
         {"csrf_token": FormTokens(SECRET, 3600).issue(other_token)}, {}),
        ("foreign Origin", {"csrf_token": valid}, {"Origin": "https://evil.example"}),
        ("foreign Referer", {"csrf_token": valid},
         {"Referer": "https://evil.example/page"}),
        ("cross-site fetch", {"csrf_token": valid}, {"Sec-Fetch-Site": "cross-site"}),
        ("same-site fetch", {"csrf_token": valid}, {"Sec-Fetch-Site": "same-site"}),
    ]


def test_renewal_forged_post_rejected(conn, client) -> None:
    add_user(conn, 1, jst(2027, 2, 2, 10))
    token, reminder_id = issue_link(conn, 1)
    other_token, _ = issue_link(conn, 1, offset=-45)
    before = snapshot(conn)

    for case, form, headers in forged_cases(token, other_token):
        response = client.post(f"/renew/{token}", data=form, headers=headers)
        assert response.status_code == 403, case
        assert "手続きができませんでした" in response.text, case

    assert snapshot(conn) == before
    assert reminder_state(conn, reminder_id) == ("sent", False)


def test_renewal_non_form_body_rejected(conn, client) -> None:
    add_user(conn, 1, jst(2027, 2, 2, 10))
    token, _ = issue_link(conn, 1)
    valid = FormTokens(SECRET, 3600).issue(token)
    before = snapshot(conn)

    as_json = client.post(f"/renew/{token}", json={"csrf_token": valid})
    oversized = client.post(f"/renew/{token}", data={"csrf_token": valid, "x": "y" * 5000})

    assert as_json.status_code == 403
    assert oversized.status_code == 403
    assert snapshot(conn) == before


def test_renewal_same_origin_headers_accepted(conn, client) -> None:
    add_user(conn, 1, jst(2027, 2, 2, 10))
    token, _ = issue_link(conn, 1)

    # What a browser sends under Referrer-Policy: no-referrer.
    response = open_and_confirm(
        client, token, Origin="null", **{"Sec-Fetch-Site": "same-origin"}
    )

    assert response.status_code == 200
    assert "更新が完了しました" in response.text


def test_renewal_expired_form_rejected(conn, client) -> None:
    add_user(conn, 1, jst(2027, 2, 2, 10))
    token, _ = issue_link(conn, 1)
    two_days_ago = dt.datetime.now(UTC).timestamp() - 2 * 24 * 3600
    stale = FormTokens(SECRET, 24 * 3600, clock=lambda: two_days_ago).issue(token)
    before = snapshot(conn)

    response = client.post(f"/renew/{token}", data={"csrf_token": stale})

    assert response.status_code == 403
    assert "時間がたちすぎました" in response.text
    assert '<a href="">もう一度はじめから手続きする</a>' in response.text
    assert snapshot(conn) == before


# --- Rate limiting ------------------------------------------------------------


def test_renewal_brute_force_gets_429(conn, make_client) -> None:
    add_user(conn, 1, jst(2027, 2, 2, 10))
    token, _ = issue_link(conn, 1)
    attacker = make_client(web_settings(bad_request_limit=5), client=("198.51.100.7", 5000))
    neighbour = TestClient(attacker.app, client=("198.51.100.8", 5000))

    statuses = [attacker.get(f"/renew/{new_renewal_token()[0]}").status_code for _ in range(5)]
    blocked = attacker.get(f"/renew/{token}")
    blocked_post = attacker.post(f"/renew/{token}", data={"csrf_token": "x"})
    other = neighbour.get(f"/renew/{token}")

    assert statuses == [404] * 5
    assert blocked.status_code == 429
    assert "しばらく待ってから開いてください" in blocked.text
    assert 1 <= int(blocked.headers["retry-after"]) <= 600
    assert blocked_post.status_code == 429
    assert other.status_code == 200


def test_renewal_malformed_and_forged_count_as_bad(conn, make_client) -> None:
    add_user(conn, 1, jst(2027, 2, 2, 10))
    token, _ = issue_link(conn, 1)
    client = make_client(web_settings(bad_request_limit=3))

    client.get("/renew/bad")
    client.post(f"/renew/{token}", data={"csrf_token": "forged"})
    client.get(f"/renew/{new_renewal_token()[0]}")

    assert client.get(f"/renew/{token}").status_code == 429


def test_renewal_unicode_digit_form_counts_as_bad(conn, make_client) -> None:
    add_user(conn, 1, jst(2027, 2, 2, 10))
    token, _ = issue_link(conn, 1)
    client = make_client(web_settings(bad_request_limit=2))

    first = client.post(f"/renew/{token}", data={"csrf_token": "²1700000000.abc"})
    second = client.post(f"/renew/{token}", data={"csrf_token": "١٧٠٠٠٠٠٠٠٠.abc"})

    assert first.status_code == 403
    assert second.status_code == 403
    assert client.get(f"/renew/{token}").status_code == 429


@pytest.mark.parametrize("issued_text", ["²", "1²", "١٢٣", "１２３", "߀"])
def test_form_tokens_non_ascii_digits_invalid(issued_text: str) -> None:
    tokens = FormTokens(SECRET, 3600)

    assert tokens.problem("a" * 32, f"{issued_text}.abc") == "invalid"


def test_renewal_good_links_never_count(conn, make_client) -> None:
    add_user(conn, 1, jst(2027, 2, 2, 10))
    token, _ = issue_link(conn, 1)
    client = make_client(web_settings(bad_request_limit=2))

    statuses = [client.get(f"/renew/{token}").status_code for _ in range(6)]

    assert statuses == [200] * 6


def test_renewal_forwarded_for_ignored_by_default(conn, make_client) -> None:
    add_user(conn, 1, jst(2027, 2, 2, 10))
    token, _ = issue_link(conn, 1)
    client = make_client(web_settings(bad_request_limit=3), client=("127.0.0.1", 5000))

    for number in range(3):
        client.get(f"/renew/{new_renewal_token()[0]}",
                   headers={"X-Forwarded-For": f"192.0.2.{number}"})
    response = client.get(f"/renew/{token}", headers={"X-Forwarded-For": "192.0.2.99"})

    assert response.status_code == 429


def test_renewal_forwarded_for_from_trusted_proxy(conn, make_client) -> None:
    add_user(conn, 1, jst(2027, 2, 2, 10))
    token, _ = issue_link(conn, 1)
    settings = web_settings(bad_request_limit=3, trusted_proxies=parse_networks("127.0.0.1"))
    client = make_client(settings, client=("127.0.0.1", 5000))
    attacker = {"X-Forwarded-For": "192.0.2.1"}
    # A client cannot escape the limit by sending its own X-Forwarded-For:
    # the proxy appends the real address, and only that hop is believed.
    spoofing = {"X-Forwarded-For": "10.9.9.9, 192.0.2.1"}

    for _ in range(3):
        client.get(f"/renew/{new_renewal_token()[0]}", headers=attacker)

    assert client.get(f"/renew/{token}", headers=attacker).status_code == 429
    assert client.get(f"/renew/{token}", headers=spoofing).status_code == 429
    assert client.get(
        f"/renew/{token}", headers={"X-Forwarded-For": "192.0.2.2"}
    ).status_code == 200


# --- Headers, errors and logs -----------------------------------------------------


def assert_security_headers(response, case: str) -> None:
    for name, value in SECURITY_HEADERS.items():
        assert response.headers.get(name) == value, f"{case}: {name}"
    policy = response.headers.get("content-security-policy", "")
    assert "default-src 'none'" in policy, case
    assert "frame-ancestors 'none'" in policy, case
    assert "form-action 'self'" in policy, case
    assert "unsafe-inline" not in policy, case
    assert "script-src" not in policy, case


def test_security_headers_on_every_response(conn, make_client) -> None:
    add_user(conn, 1, jst(2027, 2, 2, 10))
    token, _ = issue_link(conn, 1)
    client = make_client(web_settings(bad_request_limit=2))
    responses = {
        "confirmation": client.get(f"/renew/{token}"),
        "forged": client.post(f"/renew/{token}", data={}),
        "malformed": client.get("/renew/x"),
        "not routed": client.get("/elsewhere"),
        "wrong method": client.delete(f"/renew/{token}"),
        "rate limited": client.get(f"/renew/{token}"),
    }
    assert responses["rate limited"].status_code == 429

    for case, response in responses.items():
        assert_security_headers(response, case)
    assert "set-cookie" not in responses["confirmation"].headers


def test_security_headers_inline_style_hash(conn, client) -> None:
    add_user(conn, 1, jst(2027, 2, 2, 10))
    token, _ = issue_link(conn, 1)

    response = client.get(f"/renew/{token}")

    [style] = re.findall(r"<style>(.*?)</style>", response.text, re.DOTALL)
    digest = base64.b64encode(hashlib.sha256(style.encode("utf-8")).digest()).decode()
    assert f"style-src 'sha256-{digest}'" in response.headers["content-security-policy"]


def test_renewal_unexpected_error_generic_page(conn, client, caplog) -> None:
    add_user(conn, 1, jst(2027, 2, 2, 10), name="秘密 花子")
    token, reminder_id = issue_link(conn, 1)
    page = client.get(f"/renew/{token}")
    # Break the renewal at its INSERT; the user and reminder updates roll back.
    with conn.cursor() as cur:
        cur.execute("ALTER TABLE net119.renewals RENAME TO renewals_moved")
    conn.commit()
    before = snapshot_without_renewals(conn)

    with caplog.at_level(logging.ERROR, logger="net119.web"):
        response = client.post(f"/renew/{token}", data={"csrf_token": form_token_of(page.text)})

    assert response.status_code == 500
    assert "エラーが起きました" in response.text
    assert "Traceback" not in response.text
    assert "renewals" not in response.text
    assert_security_headers(response, "error page")
    assert snapshot_without_renewals(conn) == before
    [record] = [r for r in caplog.records if r.name == "net119.web.app"]
    assert f"reminder {reminder_id}" in record.getMessage()
    assert record.exc_info is not None
    assert "秘密" not in record.getMessage()
    assert token not in caplog.text


def snapshot_without_renewals(conn) -> tuple:
    with conn.cursor() as cur:
        cur.execute("SELECT expires_at, status FROM net119.users ORDER BY id")
        users = cur.fetchall()
        cur.execute("SELECT outcome, confirmed_at FROM net119.reminders ORDER BY id")
        reminders = cur.fetchall()
    conn.rollback()
    return users, reminders


def test_access_log_filter_redacts_token() -> None:
    token = new_renewal_token()[0]
    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", f"/net119/renew/{token}?x=1", "1.1", 200),
        None,
    )

    RedactLinkTokens().filter(record)

    assert token not in record.getMessage()
    assert "/net119/renew/***?x=1" in record.getMessage()


# --- Construction and settings --------------------------------------------------------


def test_link_token_format_matches_generator() -> None:
    tokens = [new_renewal_token()[0] for _ in range(200)]

    assert all(is_valid_link_token(token) for token in tokens)


def test_create_app_reads_nothing_before_request(monkeypatch, caplog) -> None:
    monkeypatch.delenv("NET119_WEB_SECRET", raising=False)
    monkeypatch.delenv("NET119_DATABASE_URL", raising=False)

    with caplog.at_level(logging.INFO):
        app = create_app()

    assert [route.path for route in app.routes if hasattr(route, "methods")] == [
        "/renew/{token}", "/renew/{token}"
    ]
    assert caplog.records == []


def test_web_settings_missing_secret_warns(caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="net119.web.settings"):
        settings = WebSettings.from_env(lambda name: None)

    assert len(settings.secret) == 32
    assert "NET119_WEB_SECRET is not set" in caplog.text


def test_web_settings_rejects_bad_values() -> None:
    env = {"NET119_WEB_SECRET": "too-short"}
    with pytest.raises(ValueError, match="at least 32"):
        WebSettings.from_env(env.get)
    env = {"NET119_WEB_SECRET": "s" * 40, "NET119_TRUSTED_PROXIES": "10.0.0.1, proxy.local"}
    with pytest.raises(ValueError, match="'proxy.local'"):
        WebSettings.from_env(env.get)
    env = {"NET119_WEB_SECRET": "s" * 40, "NET119_WEB_BAD_REQUEST_LIMIT": "0"}
    with pytest.raises(ValueError, match="NET119_WEB_BAD_REQUEST_LIMIT"):
        WebSettings.from_env(env.get)


def test_web_settings_origin_from_base_url() -> None:
    env = {
        "NET119_WEB_SECRET": "s" * 40,
        "NET119_RENEWAL_BASE_URL": "HTTPS://Renew.Example.JP:443/net119/renew/",
        "NET119_TRUSTED_PROXIES": "10.0.0.0/8, ::1",
    }

    settings = WebSettings.from_env(env.get)

    assert settings.allowed_origins == frozenset({"https://renew.example.jp"})
    assert [str(n) for n in settings.trusted_proxies] == ["10.0.0.0/8", "::1/128"]


def test_renewal_with_least_privilege_role(conn, db_url, make_client) -> None:
    role = f"net119_web_{os.getpid()}"
    now = dt.datetime.now(UTC)
    add_user(conn, 1, now - dt.timedelta(days=40))
    token, _ = issue_link(conn, 1, offset=30)
    transitions.apply_expiry_transitions(conn, now=now)
    with conn.cursor() as cur:
        cur.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
        cur.execute(
            sql.SQL(sqlfiles.load("grant_renewal_web_role")).format(role=sql.Identifier(role))
        )
    conn.commit()
    parts = urlsplit(db_url)
    host = (parts.hostname or "") + (f":{parts.port}" if parts.port else "")
    client = make_client(database_url=urlunsplit(parts._replace(netloc=f"{role}@{host}")))
    try:
        response = open_and_confirm(client, token)
        again = client.get(f"/renew/{token}")
    finally:
        client.app.state.services.close()
        with conn.cursor() as cur:
            cur.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
            cur.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
        conn.commit()

    assert response.status_code == 200
    assert "「失効中」から「利用中」にもどりました" in response.text
    assert again.status_code == 200
    assert len(renewals_of(conn, 1)) == 1
