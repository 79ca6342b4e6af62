"""Request checks of the renewal pages: link tokens, forms, origins, clients.

- Link tokens are checked by format before any database lookup. A valid token
  is 32 characters of the URL-safe base64 alphabet, which is what
  ``net119.mail.compose.new_renewal_token`` makes from 24 random bytes.
- The confirmation form carries a token signed with HMAC-SHA256 over the link
  token and the time the page was shown, so a form posted from another site
  (which cannot read the page) is rejected. The app sets no cookie.
- A POST whose ``Sec-Fetch-Site``, ``Origin`` or ``Referer`` header names
  another site is rejected. Pages are served with ``Referrer-Policy:
  no-referrer``, under which browsers send ``Origin: null`` and no ``Referer``
  with the form, so a null or absent value is left to the signed form token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from net119.web.settings import IPNetwork, origin_of

LINK_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{32}")
# Allowed difference between the clocks of two processes that serve the form.
_CLOCK_SKEW_SECONDS = 300
_FORM_TOKEN_PURPOSE = b"net119-renewal-form"

FormTokenProblem = Literal["missing", "invalid", "expired"]


def is_valid_link_token(token: str) -> bool:
    return LINK_TOKEN_RE.fullmatch(token) is not None


@dataclass(frozen=True)
class FormTokens:
    """Issue and verify the signed token of the confirmation form."""

    secret: bytes
    max_age_seconds: int
    clock: Callable[[], float] = time.time

    def issue(self, link_token: str) -> str:
        issued_at = int(self.clock())
        return f"{issued_at}.{self._signature(link_token, issued_at)}"

    def problem(self, link_token: str, form_token: str | None) -> FormTokenProblem | None:
        """Return what is wrong with ``form_token`` for ``link_token``, or None if valid."""
        if not form_token:
            return "missing"
        issued_text, _, signature = form_token.partition(".")
        # isdigit() alone accepts digits such as "²" that int() rejects.
        if not (issued_text.isascii() and issued_text.isdigit()):
            return "invalid"
        if len(issued_text) > 12 or not signature:
            return "invalid"
        issued_at = int(issued_text)
        expected = self._signature(link_token, issued_at)
        if not hmac.compare_digest(expected.encode("ascii"), signature.encode("ascii", "replace")):
            return "invalid"
        age = self.clock() - issued_at
        if age > self.max_age_seconds or age < -_CLOCK_SKEW_SECONDS:
            return "expired"
        return None

    def _signature(self, link_token: str, issued_at: int) -> str:
        message = b"\x00".join(
            (_FORM_TOKEN_PURPOSE, link_token.encode("ascii"), str(issued_at).encode("ascii"))
        )
        digest = hmac.new(self.secret, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def cross_site_header(headers: Mapping[str, str], allowed_origins: Iterable[str]) -> str | None:
    """Return the name of the header that shows a cross-site POST, or None.

    ``Sec-Fetch-Site`` must be ``same-origin`` or ``none`` when present, and
    ``Origin`` and ``Referer``, when present and not ``null``, must have one
    of ``allowed_origins``.
    """
    allowed = set(allowed_origins)
    fetch_site = headers.get("sec-fetch-site")
    if fetch_site is not None and fetch_site not in ("same-origin", "none"):
        return "Sec-Fetch-Site"
    origin = headers.get("origin")
    if origin is not None and origin != "null" and origin.lower() not in allowed:
        return "Origin"
    referer = headers.get("referer")
    if referer:
        try:
            referer_origin = origin_of(referer)
        except ValueError:
            return "Referer"
        if referer_origin not in allowed:
            return "Referer"
    return None


def client_address(
    peer: str | None, forwarded_for: Iterable[str], trusted_proxies: tuple[IPNetwork, ...]
) -> str:
    """Return the client's address, believing X-Forwarded-For only from trusted proxies.

    The hops of X-Forwarded-For are read from the right, and the first one that
    is not a trusted proxy is the client. Hops to its left are never read,
    because that client could have written them.
    """
    if peer is None:
        return "unknown"
    try:
        peer_ip = ipaddress.ip_address(peer)
    except ValueError:
        return peer
    if not _is_trusted(peer_ip, trusted_proxies):
        return str(peer_ip)
    hops = [hop.strip() for value in forwarded_for for hop in value.split(",") if hop.strip()]
    for hop in reversed(hops):
        try:
            hop_ip = ipaddress.ip_address(hop)
        except ValueError:
            # A trusted proxy passed on a value that is not an address, so the
            # proxy chain is misconfigured and only the peer is certain.
            return str(peer_ip)
        if not _is_trusted(hop_ip, trusted_proxies):
            return str(hop_ip)
    return str(peer_ip)


def _is_trusted(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address, networks: tuple[IPNetwork, ...]
) -> bool:
    return any(address in network for network in networks)


def rate_limit_key(address: str) -> str:
    """Return the rate-limit key of a client address.

    An IPv6 host usually owns a whole /64, so IPv6 clients are counted per /64.
    """
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if ip.version == 6:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


_RENEW_PATH_TOKEN = re.compile(r"(/renew/)[^/?#\s\"]+")


def redact_link_tokens(text: str) -> str:
    """Replace the token of every ``/renew/<token>`` path in ``text`` with ``***``."""
    return _RENEW_PATH_TOKEN.sub(r"\1***", text)


class RedactLinkTokens(logging.Filter):
    """Logging filter that removes renewal link tokens from access-log records.

    uvicorn's access logger passes the request path as a record argument.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                redact_link_tokens(arg) if isinstance(arg, str) else arg for arg in record.args
            )
        elif isinstance(record.msg, str):
            record.msg = redact_link_tokens(record.msg)
        return True
