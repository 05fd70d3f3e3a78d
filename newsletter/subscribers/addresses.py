"""Email addresses: one canonical form, checked for shape without any network look-up."""

from __future__ import annotations

import re

import idna

from newsletter.errors import InvalidInputError

_LOCAL = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")


def normalize_email(raw: str) -> str:
    """A canonical form of an address (trimmed, lower case, domain in IDNA), or
    InvalidInputError naming what is wrong with it. No network look-ups."""
    value = raw.strip()
    if not value:
        raise InvalidInputError("email", "missing")
    if len(value) > 254 or value.count("@") != 1:
        raise InvalidInputError("email", f"{raw!r:.80} is not an email address")
    local, domain = value.rsplit("@", 1)
    if not local or len(local) > 64 or not _LOCAL.fullmatch(local):
        raise InvalidInputError("email", f"{raw!r:.80} has an invalid part before the @")
    try:
        # IDNA 2008 with UTS 46 mapping, non-transitional: straße.de stays straße.de
        # (xn--strae-oqa.de) instead of turning into another domain, strasse.de.
        ascii_domain = idna.encode(domain.rstrip("."), uts46=True, transitional=False).decode()
    except (idna.IDNAError, UnicodeError):
        raise InvalidInputError("email", f"{raw!r:.80} has an invalid domain") from None
    ascii_domain = ascii_domain.lower()
    if len(local) + 1 + len(ascii_domain) > 254:
        raise InvalidInputError("email", f"{raw!r:.80} is longer than 254 characters")
    labels = ascii_domain.split(".")
    if (
        len(labels) < 2
        or not all(_LABEL.fullmatch(label) for label in labels)
        or labels[-1].isdigit()
    ):
        raise InvalidInputError("email", f"{raw!r:.80} has an invalid domain {domain!r}")
    return f"{local.lower()}@{ascii_domain}"
