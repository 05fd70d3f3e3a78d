"""Letters -> RFC 5322 messages for the configured site: From, List-Id, the HTML with its
CSS inlined, quoted-printable bodies and a DKIM signature (pure but for the clock passed in)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, make_msgid
from urllib.parse import urlsplit

import css_inline

from newsletter.config import Settings
from newsletter.mail.dkim import Signer
from newsletter.mail.letters import Letter


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
        self.list_id = f"{settings.site.title} <{_list_id_host(settings)}>"
        self.signer = Signer.from_settings(settings, self.domain)
        self._inliner = css_inline.CSSInliner(keep_style_tags=False, load_remote_stylesheets=False)

    def inline(self, html: str) -> str:
        """`html` with its <style> rules moved into style attributes (mail clients drop
        style sheets)."""
        return self._inliner.inline(html)

    def compose(self, letter: Letter, now: datetime) -> Envelope:
        message = EmailMessage()
        message_id = letter.message_id or make_msgid(domain=self.domain)
        message["From"] = formataddr((self.from_name, self.from_address))
        message["To"] = (
            str(Address(display_name=letter.to_name, addr_spec=letter.to))
            if letter.to_name
            else letter.to
        )
        message["Subject"] = letter.subject
        message["Date"] = format_datetime(now)
        message["Message-ID"] = message_id
        message["List-Id"] = self.list_id
        for name, value in letter.headers.items():
            message[name] = value
        message.set_content(letter.text, cte="quoted-printable")
        html = letter.html if letter.inlined else self.inline(letter.html)
        message.add_alternative(html, subtype="html", cte="quoted-printable")
        # No folding below SMTP's 998-octet limit: folding a long URL header turns it into
        # RFC 2047 encoded words, which mail clients do not read as a List-Unsubscribe URL.
        data = message.as_bytes(policy=message.policy.clone(linesep="\r\n", max_line_length=998))
        if self.signer:
            data = self.signer.sign(data, {k.lower() for k in message}) + data
        return Envelope(self.from_address, letter.to, data, message_id)


def _list_id_host(settings: Settings) -> str:
    """RFC 2919 list identifier: a dot-atom under a domain the publisher controls."""
    host = re.sub(r"[^a-z0-9.-]", "", (urlsplit(settings.base_url).hostname or "").lower())
    return f"digest.{host or 'localhost'}"
