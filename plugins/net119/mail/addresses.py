"""Check whether an address can be given to an SMTP server at all.

The check is deliberately looser than RFC 5322 in the local part: addresses
that Japanese mobile carriers issued before 2009 may contain consecutive dots
or a dot before ``@`` (``taro..yamada.@docomo.ne.jp``). They are real, the
carriers accept them unquoted, and they are mailed exactly as stored. What the
check rejects is what no server could route: a missing or doubled ``@``,
spaces or control characters, non-ASCII text (the pipeline does not rely on
SMTPUTF8), and a domain that is not a host name.
"""

from __future__ import annotations

import re

_DOMAIN_LABEL = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
# Characters that end or break an unquoted local part on the SMTP command line.
_FORBIDDEN_LOCAL = set(' \t"(),:;<>@[\\]')


def address_problem(address: str) -> str | None:
    """Return why ``address`` cannot be sent to, or ``None`` when it can."""
    if not address:
        return "empty address"
    if not address.isascii():
        return "non-ASCII characters in address"
    if any(ord(ch) < 0x21 or ord(ch) == 0x7F for ch in address):
        return "space or control character in address"
    if address.count("@") != 1:
        return "address must contain exactly one @"
    if len(address) > 254:
        return "address longer than 254 characters"

    local, domain = address.split("@")
    if not local:
        return "empty local part"
    if len(local) > 64:
        return "local part longer than 64 characters"
    if any(ch in _FORBIDDEN_LOCAL for ch in local):
        return "invalid character in local part"
    if not domain:
        return "empty domain"
    if len(domain) > 253:
        return "domain longer than 253 characters"

    labels = domain.split(".")
    if len(labels) < 2:
        return "domain has no dot"
    if not all(_DOMAIN_LABEL.match(label) for label in labels):
        return "invalid domain"
    if labels[-1].isdigit():
        # An IP address or a numeric top-level domain: no carrier or webmail host.
        return "domain is not a host name"
    return None


def mask_address(address: str) -> str:
    """Mask an address for logs: ``t***@docomo.ne.jp``."""
    local, sep, domain = address.rpartition("@")
    if not sep:
        return "***"
    return f"{local[:1]}***@{domain}"
