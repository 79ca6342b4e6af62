"""Settings of the renewal web app, read from ``NET119_*`` environment variables.

``NET119_WEB_SECRET`` signs the confirmation forms. Without it the app makes a
random secret for its own process and logs a warning: forms then stop working
after a restart, and whenever more than one process serves the page, because
each process signs with its own secret.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from net119.config import Settings

log = logging.getLogger(__name__)

SECRET_ENV = "NET119_WEB_SECRET"
TRUSTED_PROXIES_ENV = "NET119_TRUSTED_PROXIES"
MIN_SECRET_LENGTH = 32

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class WebSettings:
    """Settings of the renewal pages; ``core`` contains the shared pipeline settings."""

    secret: bytes
    core: Settings = field(default_factory=Settings)
    # Peers whose X-Forwarded-For header is believed (reverse proxies).
    trusted_proxies: tuple[IPNetwork, ...] = ()
    # Invalid tokens (malformed, unknown, or a forged form) allowed per client
    # address within the window before the client gets HTTP 429.
    bad_request_limit: int = 30
    bad_request_window_seconds: float = 600.0
    # Clients tracked by the rate limiter; the least recently seen are dropped.
    rate_limit_max_clients: int = 10_000
    # How long a confirmation form stays valid after the page was shown.
    form_max_age_seconds: int = 24 * 3600
    # Database connections per process, and how long a request waits for one.
    pool_max_connections: int = 5
    pool_timeout_seconds: float = 10.0

    @property
    def allowed_origins(self) -> frozenset[str]:
        """Return the origin of the public renewal URL, the one browsers send."""
        return frozenset({origin_of(self.core.renewal_base_url)})

    @classmethod
    def from_env(cls, lookup: Callable[[str], str | None] | None = None) -> WebSettings:
        """Build settings from the environment, or from ``lookup(name)``.

        Raises ``ValueError`` naming the variable when a value is invalid.
        """
        get = lookup or os.environ.get
        defaults = cls(secret=b"")
        return cls(
            secret=_secret(get(SECRET_ENV)),
            core=Settings.from_env(lookup),
            trusted_proxies=parse_networks(get(TRUSTED_PROXIES_ENV) or ""),
            bad_request_limit=_positive_int(
                get, "NET119_WEB_BAD_REQUEST_LIMIT", defaults.bad_request_limit
            ),
            bad_request_window_seconds=_positive_int(
                get, "NET119_WEB_BAD_REQUEST_WINDOW_SECONDS",
                int(defaults.bad_request_window_seconds),
            ),
            form_max_age_seconds=_positive_int(
                get, "NET119_WEB_FORM_MAX_AGE_SECONDS", defaults.form_max_age_seconds
            ),
            pool_max_connections=_positive_int(
                get, "NET119_WEB_POOL_MAX_CONNECTIONS", defaults.pool_max_connections
            ),
        )


def _secret(raw: str | None) -> bytes:
    if not raw:
        log.warning(
            "%s is not set: signing forms with a random secret of this process. "
            "Set it in production; forms fail after a restart and across processes.",
            SECRET_ENV,
        )
        return secrets.token_bytes(32)
    if len(raw) < MIN_SECRET_LENGTH:
        raise ValueError(
            f"invalid {SECRET_ENV}: it has {len(raw)} characters, expected at least "
            f"{MIN_SECRET_LENGTH} (make one with: python -c "
            "'import secrets; print(secrets.token_urlsafe(32))')"
        )
    return raw.encode("utf-8")


def _positive_int(get: Callable[[str], str | None], name: str, default: int) -> int:
    raw = get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"invalid {name}={raw!r}: expected a whole number") from None
    if value <= 0:
        raise ValueError(f"invalid {name}={raw!r}: must be greater than 0")
    return value


def parse_networks(raw: str) -> tuple[IPNetwork, ...]:
    """Parse a comma-separated list of IP addresses and CIDR networks.

    Raises ``ValueError`` naming the entry that is not an address or network.
    """
    networks: list[IPNetwork] = []
    for entry in raw.split(","):
        entry = entry.strip()
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ValueError(
                f"invalid {TRUSTED_PROXIES_ENV} entry {entry!r}: expected an IP address "
                "or a network such as 10.0.0.0/8"
            ) from None
    return tuple(networks)


def origin_of(url: str) -> str:
    """Return the ``scheme://host[:port]`` origin of a URL, as browsers send it."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    default_port = {"http": 80, "https": 443}.get(scheme)
    port = parts.port
    if port is None or port == default_port:
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"
