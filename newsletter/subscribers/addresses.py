"""Email addresses: one canonical form, checked for shape without any network look-up."""

from __future__ import annotations

import re
import unicodedata

import idna

from newsletter.errors import InvalidInputError

HINT = "Please enter an email address like name@example.org."


class AddressError(InvalidInputError):
    """An address was refused. `reason` names the address and the fault for editors and
    logs; `hint` says the same to a reader who typed it, without repeating it."""

    def __init__(self, raw: str, reason: str, hint: str = HINT) -> None:
        super().__init__("email", reason, raw)
        self.hint = hint


_LOCAL = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")
_BEFORE_AT = (
    "Please check the part before the @: an email address like name@example.org has "
    "letters, digits and . _ + - there, without spaces."
)
_AFTER_AT = "Please check the part after the @: it should be a domain like example.org."
_TOO_LONG = "This address is too long for email: please use one of at most 254 characters."


def normalize_email(raw: str) -> str:
    """A canonical form of an address (trimmed, lower case, domain in IDNA), or
    AddressError (an InvalidInputError) naming what is wrong with it. No network look-ups."""
    value = raw.strip()
    if not value:
        raise AddressError(
            raw, "missing", "Please enter your email address, like name@example.org."
        )
    if len(value) > 254 or value.count("@") != 1:
        raise AddressError(raw, f"{raw!r:.80} is not an email address")
    local, domain = value.rsplit("@", 1)
    if not local or len(local) > 64 or not _LOCAL.fullmatch(local):
        raise AddressError(raw, f"{raw!r:.80} has an invalid part before the @", _BEFORE_AT)
    try:
        # IDNA 2008 with UTS 46 mapping, non-transitional: straße.de stays straße.de
        # (xn--strae-oqa.de) instead of turning into another domain, strasse.de.
        ascii_domain = idna.encode(domain.rstrip("."), uts46=True, transitional=False).decode()
    except (idna.IDNAError, UnicodeError):
        raise AddressError(raw, f"{raw!r:.80} has an invalid domain", _AFTER_AT) from None
    ascii_domain = ascii_domain.lower()
    if len(local) + 1 + len(ascii_domain) > 254:
        raise AddressError(raw, f"{raw!r:.80} is longer than 254 characters", _TOO_LONG)
    labels = ascii_domain.split(".")
    if (
        len(labels) < 2
        or not all(_LABEL.fullmatch(label) for label in labels)
        or labels[-1].isdigit()
    ):
        raise AddressError(raw, f"{raw!r:.80} has an invalid domain {domain!r}", _AFTER_AT)
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
