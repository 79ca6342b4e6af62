"""The renewal page that the link in each reminder opens.

``GET /renew/{token}`` shows a confirmation page and changes nothing, because
mail scanners and link previews open links by themselves. ``POST
/renew/{token}``, sent by the page's 「更新する」 button, renews the user
through ``net119.renewal.renew_from_reminder``, which also marks the reminder
``confirmed``. Both requests respond with a Japanese page and this HTTP status:

- 200: confirmation page, renewal done, or renewal already done;
- 400 malformed token, 403 forged or foreign form, 404 unknown token,
  410 token of a finished cycle, 429 too many bad requests from one client,
  503 database unreachable or busy, 500 anything unexpected.

Nothing is read from the environment or the database until the first
request, so building the app is cheap wherever Airflow loads plugins.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import psycopg2
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from net119.jpdate import format_datetime
from net119.renewal import renew_from_reminder
from net119.web.links import RenewalLink, find_link
from net119.web.pages import Pages, security_headers
from net119.web.pool import DatabasePool, PoolTimeout, airflow_params, url_params
from net119.web.ratelimit import SlidingWindowLimiter
from net119.web.security import (
    FormTokens,
    RedactLinkTokens,
    client_address,
    cross_site_header,
    is_valid_link_token,
    rate_limit_key,
)
from net119.web.settings import WebSettings, origin_of

log = logging.getLogger(__name__)

DATABASE_URL_ENV = "NET119_DATABASE_URL"
# A confirmation form carries one short field; anything larger is not ours.
MAX_FORM_BYTES = 4096

Clock = Callable[[], dt.datetime]


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass
class _Services:
    settings: WebSettings
    pages: Pages
    pool: DatabasePool
    limiter: SlidingWindowLimiter
    form_tokens: FormTokens
    clock: Clock


class _LazyServices:
    """Build the app's settings, templates and pool once, on the first request."""

    def __init__(
        self, settings: WebSettings | None, database_url: str | None, clock: Clock
    ) -> None:
        self._settings = settings
        self._database_url = database_url
        self._clock = clock
        self._services: _Services | None = None
        self._lock = threading.Lock()

    def get(self) -> _Services:
        with self._lock:
            if self._services is None:
                self._services = self._build()
            return self._services

    def _build(self) -> _Services:
        import os

        settings = self._settings or WebSettings.from_env()
        database_url = self._database_url or os.environ.get(DATABASE_URL_ENV)
        if database_url:
            params = url_params(database_url)
        else:
            log.info("%s is not set: using the net119_db Airflow connection", DATABASE_URL_ENV)
            params = airflow_params()
        return _Services(
            settings=settings,
            pages=Pages(settings.core.template_dir),
            pool=DatabasePool(
                params,
                max_connections=settings.pool_max_connections,
                timeout_seconds=settings.pool_timeout_seconds,
            ),
            limiter=SlidingWindowLimiter(
                settings.bad_request_limit,
                settings.bad_request_window_seconds,
                max_keys=settings.rate_limit_max_clients,
            ),
            form_tokens=FormTokens(settings.secret, settings.form_max_age_seconds),
            clock=self._clock,
        )

    def close(self) -> None:
        with self._lock:
            if self._services is not None:
                self._services.pool.close()


class SecurityHeadersMiddleware:
    """Add the security headers to every response that lacks them."""

    def __init__(self, app: ASGIApp, services: _LazyServices) -> None:
        self.app = app
        self.services = services

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        policy = self.services.get().pages.content_security_policy

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                for name, value in security_headers(policy).items():
                    key = name.lower().encode("latin-1")
                    if key not in present:
                        headers.append((key, value.encode("latin-1")))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_app(
    settings: WebSettings | None = None,
    database_url: str | None = None,
    *,
    clock: Clock = _utc_now,
) -> FastAPI:
    """Build the renewal web app.

    ``settings`` defaults to ``WebSettings.from_env()``. The database is
    ``database_url``, else ``$NET119_DATABASE_URL``, else the ``net119_db``
    Airflow connection. ``clock`` returns the aware time of a renewal.
    """
    services = _LazyServices(settings, database_url, clock)
    app = FastAPI(
        title="NET119 renewal",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.services = services
    app.add_middleware(SecurityHeadersMiddleware, services=services)
    _install_access_log_filter()

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        pages = services.get().pages
        if exc.status_code == 405:
            return _error(pages, "page_not_found", 405, "このページはありません",
                          headers=dict(exc.headers or {}))
        if exc.status_code == 404:
            return _error(pages, "page_not_found", 404, "このページはありません")
        return _error(pages, "internal", exc.status_code, "エラーが起きました")

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        return _error(services.get().pages, "malformed_token", 400, "リンクが正しくありません")

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, exc: Exception) -> Response:
        log.error("Renewal page request failed", exc_info=exc)
        return _error(services.get().pages, "internal", 500, "エラーが起きました")

    @app.api_route("/renew/{token}", methods=["GET", "HEAD"])
    async def show_confirmation(request: Request, token: str) -> Response:
        s = services.get()
        client = _client_key(request, s.settings)
        blocked = _blocked_response(s, client)
        if blocked is not None:
            return blocked
        if not is_valid_link_token(token):
            return _bad_request(s, client, "malformed_token", 400, "リンクが正しくありません")
        return await run_in_threadpool(_show_confirmation, s, client, token)

    @app.post("/renew/{token}")
    async def confirm_renewal(request: Request, token: str) -> Response:
        s = services.get()
        client = _client_key(request, s.settings)
        blocked = _blocked_response(s, client)
        if blocked is not None:
            return blocked
        if not is_valid_link_token(token):
            return _bad_request(s, client, "malformed_token", 400, "リンクが正しくありません")

        allowed = s.settings.allowed_origins | {origin_of(str(request.base_url))}
        foreign_header = cross_site_header(request.headers, allowed)
        if foreign_header is not None:
            log.warning("Rejected a renewal form: %s names another site", foreign_header)
            return _bad_request(s, client, "forbidden", 403, "手続きができませんでした")

        form = await _read_form(request)
        problem = s.form_tokens.problem(token, (form or {}).get("csrf_token"))
        if problem == "expired":
            return _error(s.pages, "form_expired", 403, "もう一度はじめから手続きしてください")
        if problem is not None:
            log.warning("Rejected a renewal form: the form token is %s", problem)
            return _bad_request(s, client, "forbidden", 403, "手続きができませんでした")

        return await run_in_threadpool(_confirm_renewal, s, client, token)

    return app


def _install_access_log_filter() -> None:
    access_log = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactLinkTokens) for f in access_log.filters):
        access_log.addFilter(RedactLinkTokens())


def _client_key(request: Request, settings: WebSettings) -> str:
    peer = request.client.host if request.client else None
    address = client_address(
        peer, request.headers.getlist("x-forwarded-for"), settings.trusted_proxies
    )
    return rate_limit_key(address)


def _blocked_response(s: _Services, client: str) -> Response | None:
    retry_after = s.limiter.retry_after(client)
    if retry_after is None:
        return None
    seconds = max(math.ceil(retry_after), 1)
    return _error(
        s.pages, "too_many_requests", 429, "しばらく待ってから開いてください",
        headers={"Retry-After": str(seconds)},
        context={"retry_minutes": max(math.ceil(seconds / 60), 1)},
    )


def _bad_request(
    s: _Services, client: str, error: str, status_code: int, title: str
) -> Response:
    """Count a bad request against ``client`` and render its error page."""
    if s.limiter.record(client):
        # The address is logged once per block so that an operator can act on it.
        log.warning(
            "Client %s reached %d bad renewal requests within %d s and is blocked",
            client, s.settings.bad_request_limit, s.settings.bad_request_window_seconds,
        )
    return _error(s.pages, error, status_code, title)


def _error(
    pages: Pages,
    error: str,
    status_code: int,
    title: str,
    headers: Mapping[str, str] | None = None,
    context: Mapping[str, Any] | None = None,
) -> Response:
    return pages.render(
        "renewal_error.html.j2",
        {**(context or {}), "error": error, "title": title},
        status_code,
        headers,
    )


async def _read_form(request: Request) -> dict[str, str] | None:
    """Return the fields of a URL-encoded form body, or None if it is not one.

    Reads at most ``MAX_FORM_BYTES``; a longer body is not a form of this app.
    """
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        return None
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > MAX_FORM_BYTES:
            return None
    try:
        fields = parse_qs(body.decode("ascii"), max_num_fields=10, strict_parsing=False)
    except (UnicodeDecodeError, ValueError):
        return None
    return {name: values[0] for name, values in fields.items()}


def _show_confirmation(s: _Services, client: str, token: str) -> Response:
    link: RenewalLink | None = None
    try:
        with s.pool.connection() as conn:
            link = find_link(conn, token)
        if link is None:
            return _bad_request(s, client, "unknown_token", 404, "このリンクは見つかりません")
        if link.state == "confirmed":
            return _done_page(s, link, link.expires_at, already_done=True)
        if link.state == "cycle_finished":
            return _cycle_finished_page(s, link)

        now = s.clock()
        return s.pages.render(
            "renewal_confirm.html.j2",
            {
                "user_name": link.user_name,
                "lapsed": link.status == "lapsed",
                "expired": link.expires_at <= now,
                "expires_at_text": format_datetime(link.expires_at),
                "csrf_token": s.form_tokens.issue(token),
                **_station(link),
            },
        )
    except Exception as exc:
        return _failure_page(s, exc, link, "show")


def _confirm_renewal(s: _Services, client: str, token: str) -> Response:
    link: RenewalLink | None = None
    try:
        with s.pool.connection() as conn:
            link = find_link(conn, token)
            if link is None:
                return _bad_request(s, client, "unknown_token", 404, "このリンクは見つかりません")
            result = renew_from_reminder(conn, link.reminder_id, at=s.clock(), via="link")
            if result.status == "cycle_finished":
                link = find_link(conn, token) or link
        if result.status == "renewed":
            log.info(
                "Renewal link confirmed: reminder %s, user %s, renewal %s",
                link.reminder_id, link.user_id, result.renewal_id,
            )
            return _done_page(
                s, link, result.new_expires_at, already_done=False,
                was_lapsed=link.status == "lapsed",
            )
        if result.status == "already_renewed":
            log.info("Renewal link posted again: reminder %s is already confirmed",
                     link.reminder_id)
            return _done_page(s, link, result.new_expires_at, already_done=True)
        if result.status == "cycle_finished":
            return _cycle_finished_page(s, link)
        log.warning("Reminder %s disappeared before its renewal", link.reminder_id)
        return _error(s.pages, "unknown_token", 404, "このリンクは見つかりません")
    except Exception as exc:
        return _failure_page(s, exc, link, "confirm")


def _station(link: RenewalLink) -> dict[str, str]:
    return {
        "station_name": link.station_name,
        "station_phone": link.station_phone,
        "station_fax": link.station_fax,
        "station_email": link.station_email,
    }


def _done_page(
    s: _Services,
    link: RenewalLink,
    expires_at: dt.datetime | None,
    *,
    already_done: bool,
    was_lapsed: bool = False,
) -> Response:
    displayed_expiry = expires_at or link.expires_at
    return s.pages.render(
        "renewal_done.html.j2",
        {
            "already_done": already_done,
            "was_lapsed": was_lapsed,
            "expires_at_text": format_datetime(displayed_expiry),
            **_station(link),
        },
    )


def _cycle_finished_page(s: _Services, link: RenewalLink) -> Response:
    return _error(
        s.pages, "cycle_finished", 410, "このリンクは使えません",
        context={
            "active": link.status == "active",
            "expires_at_text": format_datetime(link.expires_at),
            **_station(link),
        },
    )


def _failure_page(
    s: _Services, exc: Exception, link: RenewalLink | None, action: str
) -> Response:
    reminder_id = link.reminder_id if link else None
    if isinstance(exc, (PoolTimeout, psycopg2.OperationalError)):
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        log.error("Renewal page (%s, reminder %s) cannot reach the database: %s %s",
                  action, reminder_id, type(exc).__name__, reason)
        return _error(s.pages, "unavailable", 503, "ただいま手続きができません",
                      headers={"Retry-After": "60"})
    log.exception("Renewal page (%s, reminder %s) failed", action, reminder_id)
    return _error(s.pages, "internal", 500, "エラーが起きました")
