"""Messages prebuilt as bytes with slots, filled per recipient (pure).

A digest segment's message is the same for thousands of recipients but for a few parts:
the To header, the Message-ID, the Date, the List-Unsubscribe URL and a handful of values
in the bodies (the greeting, the address, the links). `Prepared` encodes everything else
once (multipart/alternative, quoted-printable, CRLF, lines of at most 76 characters, no
line starting with a dot) and keeps the canonical form of each piece for the DKIM body
hash; `fill` then costs a few string joins, a short encoding of each value and one
SHA-256 pass over the body. The result goes into SMTP DATA unchanged.
"""

from __future__ import annotations

import base64
import html
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from email.policy import SMTP

from newsletter.mail import qp
from newsletter.mail.dkim import Field, Signer, body_hash, canonical_lines

_POLICY = SMTP.clone(max_line_length=78)
_PLAIN_NAME = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~ .,-]*")


@dataclass(frozen=True)
class Slot:
    name: str  # the marker it replaces
    escape: bool  # HTML-escape the value (a slot in the HTML body)


@dataclass(frozen=True)
class Filled:
    """A recipient's message before signing: its header fields and body pieces."""

    fields: list[Field]
    body: list[bytes]
    static: list[bytes | None]  # the canonical form of each static piece; None for a slot

    @property
    def canonical(self) -> list[bytes]:
        """The body pieces in relaxed canonical form (only the slots are worked out here:
        only signing needs them)."""
        return [
            canonical_lines(raw) if known is None else known
            for raw, known in zip(self.body, self.static, strict=True)
        ]

    def data(self, signer: Signer | None) -> bytes:
        """The message as it goes into DATA, signed when there is a signer (CPU-bound:
        call it off the event loop when signing)."""
        head = b"".join(f"{name}:{value}\r\n".encode() for name, value in self.fields)
        signature = signer.signatures(self.fields, body_hash(self.canonical)) if signer else b""
        return b"".join((signature, head, b"\r\n", *self.body))


class Prepared:
    """One message for many recipients; `markers` in `text` and `html` are slots."""

    def __init__(
        self,
        headers: Sequence[tuple[str, str]],
        text: str,
        html_body: str,
        markers: Sequence[str] = (),
    ) -> None:
        self.boundary = f"=_nl_{secrets.token_hex(12)}"
        # header values folded once (RFC 2047 for non-ASCII, lines within 78 characters)
        self.fields: list[Field] = [_folded(name, value) for name, value in headers]
        self.fields += [
            ("MIME-Version", " 1.0"),
            ("Content-Type", f' multipart/alternative;\r\n boundary="{self.boundary}"'),
        ]
        pieces: list[bytes | Slot] = []
        for subtype, body, escape in (("plain", text, False), ("html", html_body, True)):
            # the CRLF before a boundary belongs to the boundary (RFC 2046 section 5.1.1)
            pieces.append(
                f'\r\n--{self.boundary}\r\nContent-Type: text/{subtype}; charset="utf-8"\r\n'
                "Content-Transfer-Encoding: quoted-printable\r\n\r\n".encode()
            )
            pieces.extend(_split(body, markers, escape))
        pieces.append(f"\r\n--{self.boundary}--\r\n".encode())
        self.pieces = [(p, canonical_lines(p)) if isinstance(p, bytes) else p for p in pieces]

    def fill(
        self,
        to_address: str,
        to_name: str,
        headers: Sequence[tuple[str, str]],
        values: Mapping[str, str],
    ) -> Filled:
        """The message for one recipient: To, `headers` (Date, Message-ID...) and the
        slots' `values` (plain text; escaped where the slot is in HTML)."""
        fields = [self.fields[0], ("To", " " + address_header(to_name, to_address))]
        fields += self.fields[1:-2]
        for name, value in headers:
            if "\r" in value or "\n" in value:  # it would start a header of its own
                raise ValueError(f"a line break in the {name} header: {value[:80]!r}")
            fields.append((name, " " + value))
        fields += self.fields[-2:]
        body: list[bytes] = []
        static: list[bytes | None] = []
        encoded: dict[Slot, bytes] = {}
        for piece in self.pieces:
            if isinstance(piece, Slot):
                raw = encoded.get(piece)
                if raw is None:
                    value = values[piece.name]
                    raw = encoded[piece] = qp.encode_piece(
                        html.escape(value) if piece.escape else value
                    )
                body.append(raw)
                static.append(None)
            else:
                body.append(piece[0])
                static.append(piece[1])
        return Filled(fields, body, static)


def _split(body: str, markers: Sequence[str], escape: bool) -> list[bytes | Slot]:
    """`body` as encoded static pieces and the slots between them."""
    if not markers:
        return [qp.encode_piece(body)]
    pattern = "(" + "|".join(re.escape(m) for m in markers) + ")"
    found: list[bytes | Slot] = []
    for n, part in enumerate(re.split(pattern, body)):
        if n % 2:
            found.append(Slot(part, escape))
        elif part:
            found.append(qp.encode_piece(part))
    return found


def _folded(name: str, value: str) -> Field:
    if name.lower() == "subject" and (not value.isascii() or "=?" in value):
        # written as encoded words here: the policy would read "=?...?=" spelled out in a
        # title as an encoded word and decode it
        return name, " " + "\r\n ".join(_encoded_words(value))
    folded = _POLICY.fold(name, value)  # "Name: value\r\n", encoded and folded
    return name, folded[len(name) + 1 : -2]


def _encoded_words(text: str) -> list[str]:
    """RFC 2047 encoded words (UTF-8, base64) for `text`, never splitting a character."""
    words = []
    chunk = b""
    for char in text:
        encoded = char.encode("utf-8")
        if len(chunk) + len(encoded) > 42:  # 42 bytes -> 56 base64 characters a word
            words.append(chunk)
            chunk = b""
        chunk += encoded
    words.append(chunk)
    return [f"=?utf-8?b?{base64.b64encode(w).decode()}?=" for w in words]


def address_header(name: str, address: str) -> str:
    """A To value for `name <address>`: a quoted string when the name is plain ASCII, RFC
    2047 encoded words (UTF-8, base64, folded) otherwise; the bare address without a name."""
    if not name:
        return address
    if _PLAIN_NAME.fullmatch(name) and len(name) < 60:
        return f'"{name}" <{address}>'  # the pattern leaves out quotes and backslashes
    return "\r\n ".join(_encoded_words(name)) + f"\r\n <{address}>"
