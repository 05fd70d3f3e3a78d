"""Email addresses: one canonical form, checked for shape without any network look-up."""

from __future__ import annotations

import re
import unicodedata

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


# Characters that hide or reorder text: bidi embeddings, overrides and isolates, marks
# that turn text around, zero-width characters and the byte-order mark.
_INVISIBLE = re.compile("[\u200b-\u200f\u202a-\u202e\u2060-\u2069\u061c\ufeff\u00ad]")
_ENCODED_WORD = re.compile(r"=\?[^?\s]*\?[bBqQ]\?[^?\s]*\?=")


def clean_name(raw: str, most: int = 100) -> str:
    """A name as a reader typed it, made harmless for mail headers and pages: control
    characters (CR, LF), bidi overrides, zero-width characters and RFC 2047 encoded words
    (which a mail header would decode into anything) removed, white space folded, at most
    `most` characters. Markup stays text (pages escape it). Cleaning a clean name changes
    nothing, so an export imported again is unchanged."""
    text = raw[: most * 4]
    while True:
        cleaned = _ENCODED_WORD.sub("", _INVISIBLE.sub("", text))
        cleaned = "".join(c if unicodedata.category(c)[0] != "C" else " " for c in cleaned)
        cleaned = " ".join(cleaned.split())[:most].strip()
        if cleaned == text:
            return cleaned
        text = cleaned
