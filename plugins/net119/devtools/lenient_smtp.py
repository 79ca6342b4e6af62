"""An aiosmtpd protocol class that accepts every address a carrier would.

aiosmtpd parses ``MAIL FROM`` and ``RCPT TO`` arguments as RFC 5322 addr-specs
and replies 553 to pre-2009 Japanese carrier addresses such as
``taro..yamada.@docomo.ne.jp``, which the carriers' own servers accept. Local
sinks and test servers must accept them too, or they would report a rejection
that production never sees.
"""

from __future__ import annotations

from aiosmtpd.smtp import SMTP


class LenientSMTP(SMTP):
    """aiosmtpd's SMTP with a parser that takes ``<...>`` arguments verbatim."""

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        stripped = arg.strip()
        if stripped.startswith("<"):
            end = stripped.find(">")
            if end > 0:
                address = stripped[1:end]
                rest = stripped[end + 1:]
                if any(ch.isspace() for ch in address):
                    return None, None
                return address, rest
        return super()._getaddr(arg)
