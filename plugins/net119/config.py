"""Deployment settings read from the environment.

Every setting has a default that works for the local demo. Production
deployments set the ``NET119_*`` variables in the environment of the Airflow
workers (and of the renewal web app for the link settings).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

DEFAULT_TEMPLATE_DIR = Path(__file__).resolve().parents[2] / "include" / "templates"


@dataclass(frozen=True)
class Settings:
    # Renewal links are "<renewal_base_url>/<token>".
    renewal_base_url: str = "http://127.0.0.1:8080/net119/renew"
    # Header sender of reminders; users are asked to allow its domain.
    mail_from: str = "NET119 緊急通報システム <noreply@net119.example.jp>"
    # Domain of the VERP return path "bounce+<token>@<bounce_domain>".
    bounce_domain: str = "net119.example.jp"
    # Recipient domains that get ISO-2022-JP instead of UTF-8.
    iso2022jp_domains: tuple[str, ...] = ()
    # Reminders claimed and sent per SMTP session and database transaction.
    batch_size: int = 500
    # A claim older than this is taken as an interrupted send and retried.
    claim_lease_minutes: int = 15
    # SMTP socket timeout in seconds.
    smtp_timeout: float = 30.0
    template_dir: Path = DEFAULT_TEMPLATE_DIR

    @property
    def message_id_domain(self) -> str:
        return self.bounce_domain

    @classmethod
    def from_env(cls, lookup: Callable[[str], str | None] | None = None) -> Settings:
        """Build settings from ``NET119_*`` variables, or from ``lookup(name)``.

        Raises ``ValueError`` naming the variable when a number is not valid.
        """
        get = lookup or os.environ.get
        defaults = cls()

        def number(name: str, default: float, kind: type) -> float:
            raw = get(name)
            if raw is None or raw == "":
                return default
            try:
                value = kind(raw)
            except ValueError:
                raise ValueError(f"invalid {name}={raw!r}: expected a number") from None
            if value <= 0:
                raise ValueError(f"invalid {name}={raw!r}: must be greater than 0")
            return value

        domains = get("NET119_ISO2022JP_DOMAINS") or ""
        return cls(
            renewal_base_url=(get("NET119_RENEWAL_BASE_URL") or defaults.renewal_base_url).rstrip("/"),
            mail_from=get("NET119_MAIL_FROM") or defaults.mail_from,
            bounce_domain=get("NET119_BOUNCE_DOMAIN") or defaults.bounce_domain,
            iso2022jp_domains=tuple(
                d.strip().lower() for d in domains.split(",") if d.strip()
            ),
            batch_size=int(number("NET119_BATCH_SIZE", defaults.batch_size, int)),
            claim_lease_minutes=int(
                number("NET119_CLAIM_LEASE_MINUTES", defaults.claim_lease_minutes, int)
            ),
            smtp_timeout=number("NET119_SMTP_TIMEOUT", defaults.smtp_timeout, float),
            template_dir=Path(get("NET119_TEMPLATE_DIR") or defaults.template_dir),
        )
