"""Letters -> RFC 5322 messages for the configured site: From, List-Id, the HTML with its
CSS inlined, quoted-printable bodies and a DKIM signature (pure but for the clock passed in).
Every message, a confirmation as much as a digest, is built by `prepared.Prepared`."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime, formataddr, make_msgid
from urllib.parse import urlsplit

import css_inline

from newsletter.config import Settings
from newsletter.mail.dkim import Signer
from newsletter.mail.letters import Letter
from newsletter.mail.prepared import Prepared


@dataclass(frozen=True)
class Envelope:
    """A message ready for the wire."""

    mail_from: str
    recipient: str
    data: bytes
    message_id: str


class Composer:
    """Builds messages for the configured site."""

    def __init__(self, settings: Settings) -> None:
        mail = settings.mail
        self.from_address = mail.from_address
        self.from_name = mail.from_name or settings.site.title
        self.domain = mail.from_address.rpartition("@")[2]
        # formataddr encodes a non-ASCII title as RFC 2047 words (List-Id is a phrase and
        # an id in angle brackets, like an address)
        self.list_id = formataddr((settings.site.title, _list_id_host(settings)))
        self.signer = Signer.from_settings(settings, self.domain)
        self._inliner = css_inline.CSSInliner(keep_style_tags=False, load_remote_stylesheets=False)

    def inline(self, html: str) -> str:
        """`html` with its <style> rules moved into style attributes (mail clients drop
        style sheets) and those sheets removed; a sheet marked data-css-inline="keep" stays
        in the head (the layout's @media rules: narrow screens, dark mode)."""
        return self._inliner.inline(html)

    def static_headers(self, subject: str) -> list[tuple[str, str]]:
        """The headers every recipient of a message gets alike."""
        return [
            ("From", formataddr((self.from_name, self.from_address))),
            ("Subject", subject),
            ("List-Id", self.list_id),
        ]

    def prepare(self, subject: str, text: str, html: str, markers: Sequence[str] = ()) -> Prepared:
        """A message prebuilt for many recipients (`markers` are filled per recipient)."""
        return Prepared(self.static_headers(subject), text, html, markers)

    def compose(self, letter: Letter, now: datetime) -> Envelope:
        message_id = letter.message_id or make_msgid(domain=self.domain)
        html = letter.html if letter.inlined else self.inline(letter.html)
        filled = self.prepare(letter.subject, letter.text, html).fill(
            letter.to,
            letter.to_name,
            [("Date", format_datetime(now)), ("Message-ID", message_id), *letter.headers.items()],
            {},
        )
        return Envelope(self.from_address, letter.to, filled.data(self.signer), message_id)


def _list_id_host(settings: Settings) -> str:
    """RFC 2919 list identifier: a dot-atom under a domain the publisher controls."""
    host = re.sub(r"[^a-z0-9.-]", "", (urlsplit(settings.base_url).hostname or "").lower())
    return f"digest.{host or 'localhost'}"
