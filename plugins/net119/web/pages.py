"""Render the renewal pages from the Jinja templates in ``include/templates``.

Every page is HTML with no script. Its stylesheet is inlined in a ``<style>``
element, and the Content-Security-Policy allows exactly that element by its
SHA-256 hash, so the policy needs neither ``'unsafe-inline'`` nor a second
request for a CSS file.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup
from starlette.responses import HTMLResponse

STYLESHEET = "renewal_page.css"


def security_headers(content_security_policy: str) -> dict[str, str]:
    """Return the headers that every response of the renewal app carries.

    ``no-referrer`` keeps the link token, which is in the page's URL, out of
    the Referer header of any request the page leads to, and ``no-store``
    keeps the page, which shows the user's name, out of shared caches.
    """
    return {
        "Content-Security-Policy": content_security_policy,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "X-Frame-Options": "DENY",
        "Cache-Control": "no-store",
        "Cross-Origin-Opener-Policy": "same-origin",
        "X-Robots-Tag": "noindex, nofollow",
    }


class Pages:
    """Jinja environment of the renewal pages, with HTML autoescaping always on.

    Starlette 1.10's ``Jinja2Templates`` escapes only templates whose names end in
    ``.html``, ``.htm`` or ``.xml``, so the ``*.html.j2`` templates get their own
    environment with ``autoescape=True``.
    """

    def __init__(self, template_dir: Path) -> None:
        if not template_dir.is_dir():
            raise FileNotFoundError(
                f"template folder {template_dir} not found: set NET119_TEMPLATE_DIR"
            )
        self._env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(template_dir)),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        stylesheet = (template_dir / STYLESHEET).read_text(encoding="utf-8")
        self._stylesheet = Markup(stylesheet)
        style_hash = base64.b64encode(hashlib.sha256(stylesheet.encode("utf-8")).digest())
        self.content_security_policy = (
            "default-src 'none'; "
            f"style-src 'sha256-{style_hash.decode('ascii')}'; "
            "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
        )

    def render(
        self,
        template: str,
        context: Mapping[str, Any],
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
    ) -> HTMLResponse:
        html = self._env.get_template(template).render(
            {**context, "stylesheet": self._stylesheet}
        )
        response = HTMLResponse(html, status_code=status_code)
        response.headers.update(security_headers(self.content_security_policy))
        if headers:
            response.headers.update(headers)
        return response
