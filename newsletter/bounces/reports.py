"""Bounce and complaint reports read from raw mail (pure: bytes and the VERP secret in,
`Report`s out; no I/O).

- A delivery status notification (RFC 3464): multipart/report with a
  message/delivery-status part, one block per recipient. Only the recipients whose Action
  is "failed" or "delayed" make reports ("delivered", "relayed" and "expanded" are good
  news). A relay that gave up is a hard bounce, except for the codes that say nothing bad
  about the address: 4.x.x, 5.2.2 (mailbox full) and 5.7.x (a policy block, which is
  about our server, the way newsletter.mail.policy reads it at SMTP time) are soft, as is
  every "delayed".
- A complaint (RFC 5965, ARF): multipart/report with a message/feedback-report part whose
  Feedback-Type is abuse, fraud, virus or other; the reader's address is its
  Original-Rcpt-To or the To of the original message it quotes.

The delivery a report is about is found through its VERP address (newsletter.mail.verp):
the bounce's To, Delivered-To or X-Original-To (written by our own mail server from the
envelope), the Return-Path of the quoted original, or a complaint's Original-Mail-From.
A report naming a VERP address whose mac is wrong is marked `tampered`: someone guessed
at a delivery, and nothing may be suppressed on its word.

Anything else (auto-replies, read receipts, plain-text bounces of old relays, garbage)
yields no report, and no input makes `parse` raise.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from email import policy
from email.message import Message
from email.parser import BytesParser, Parser
from email.utils import getaddresses

from newsletter.mail import verp
from newsletter.models import BounceKind

# A report quotes at most the original message: a digest is well under this. Bigger mail
# in a bounce mailbox is not a report worth the memory of parsing it.
MAX_REPORT_BYTES = 20 * 1024 * 1024
EXTERNAL_ID_LENGTH = 300  # bounce.external_id
DIAGNOSTIC_LENGTH = 1000

_STATUS = re.compile(r"^\s*([245])\.(\d{1,3})\.(\d{1,3})(?!\d)")
# The shape of a VERP address (newsletter.mail.verp), to tell a forged one from none at all
_VERP_SHAPE = re.compile(r"^[^+@\s]+\+\d{1,18}-[0-9a-f]{10}@", re.IGNORECASE)
# The Message-ID newsletter.delivery.sender gives a digest: <digest.RUN.SUBSCRIBER.MAC@...>
_DIGEST_MESSAGE_ID = re.compile(r"^<?digest\.(\d{1,18})\.(\d{1,18})\.[0-9a-f]{12}@[^<>\s]+>?$")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]+")
_BLANK_LINE = re.compile(r"\r?\n[ \t]*\r?\n")

_DSN_PARTS = ("message/delivery-status", "message/global-delivery-status")
_ARF_PART = "message/feedback-report"
_ORIGINAL_PARTS = ("message/rfc822", "message/global")
_ORIGINAL_HEADER_PARTS = ("text/rfc822-headers", "message/global-headers")
# RFC 5965's types that mean a reader objected; auth-failure (RFC 6591) and not-spam
# (RFC 6430) do not
_COMPLAINTS = frozenset({"abuse", "fraud", "virus", "other"})


@dataclass(frozen=True)
class Report:
    """One bounce or complaint about one recipient.

    `email` is the address the report names (possibly empty or not normalised: trust the
    delivery's subscriber over it); `status` an RFC 3463 code such as "5.1.1" or "";
    `delivery_id` the delivery its VERP address names; `external_id` a key unique to this
    report (the same report read twice has the same key); `message_id` the Message-ID of
    the original message, when quoted; `tampered` that a VERP address in it did not verify.
    """

    kind: BounceKind
    email: str
    status: str
    diagnostic: str
    delivery_id: int | None
    external_id: str
    message_id: str | None = None
    tampered: bool = False


def clean(value: object, most: int) -> str:
    """`value` as one line of at most `most` characters: control characters and lone
    surrogates (undecodable bytes) out, white space folded. Never raises."""
    try:
        text = str(value)
    except Exception:  # a header object that cannot render itself
        return ""
    text = _CONTROL.sub(" ", text[: most * 4])
    return " ".join(text.split())[:most]


def external_id(key: str) -> str:
    """`key` as bounce.external_id holds it: itself when it fits, else a digest of it."""
    key = clean(key, EXTERNAL_ID_LENGTH * 4)
    if len(key) <= EXTERNAL_ID_LENGTH:
        return key
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


def status_code(text: str) -> str:
    """The RFC 3463 code at the start of `text` ("5.1.1"), or ""."""
    found = _STATUS.match(text)
    return ".".join(found.groups()) if found else ""


def failure_kind(status: str) -> BounceKind:
    """What a relay giving up with `status` (RFC 3463, or "") says about the address."""
    found = _STATUS.match(status)
    if found is None:
        return BounceKind.hard  # "failed" without a readable code: failed for good
    klass, subject, detail = (int(g) for g in found.groups())
    if klass == 4 or (subject, detail) == (2, 2) or subject == 7:
        return BounceKind.soft
    return BounceKind.hard


def digest_message(message_id: str | None) -> tuple[int, int] | None:
    """(run id, subscriber id) a digest's Message-ID names, unverified: a caller trusts it
    only when the ledger holds exactly that Message-ID for the pair."""
    if not message_id:
        return None
    found = _DIGEST_MESSAGE_ID.match(message_id.strip())
    return (int(found.group(1)), int(found.group(2))) if found else None


def match_verp(secret: bytes, candidates: list[str]) -> tuple[int | None, bool]:
    """The delivery the first verifiable VERP address among `candidates` names, and
    whether some address had the shape of one without verifying (a forgery)."""
    tampered = False
    for address in candidates:
        delivery_id = verp.decode(secret, address)
        if delivery_id is not None:
            return delivery_id, False
        tampered = tampered or _VERP_SHAPE.match(address.strip("<> ")) is not None
    return None, tampered


def parse(raw: bytes, secret: bytes) -> list[Report]:
    """The reports in one raw message; [] when it is not a DSN or an ARF report, or is
    too damaged to read. Never raises."""
    if len(raw) > MAX_REPORT_BYTES:
        return []
    try:
        # compat32: the most forgiving parser; the default policy raises on some headers
        message = BytesParser(policy=policy.compat32).parsebytes(raw)
        return _reports(message, raw, secret)
    except Exception:  # hostile input of any shape (deep nesting included) is no report
        return []


def _reports(message: Message, raw: bytes, secret: bytes) -> list[Report]:
    if message.get_content_maintype() != "multipart":
        return []
    parts = message.get_payload()
    if not isinstance(parts, list):
        return []
    status_part = _first(parts, _DSN_PARTS)
    feedback_part = _first(parts, (_ARF_PART,))
    if status_part is None and feedback_part is None:
        return []
    original = _original(parts)
    own_id = clean(message.get("Message-ID", ""), EXTERNAL_ID_LENGTH * 4)
    key = own_id or "sha256:" + hashlib.sha256(raw).hexdigest()
    candidates = [
        address
        for name in ("To", "Delivered-To", "X-Original-To")
        for address in _addresses(message.get_all(name, []))
    ]
    message_id = None
    if original is not None:
        candidates += _addresses(original.get_all("Return-Path", []))
        message_id = clean(original.get("Message-ID", ""), EXTERNAL_ID_LENGTH) or None
    if status_part is not None:
        found = _delivery_status(status_part)
    else:
        assert feedback_part is not None
        blocks = _blocks(feedback_part)
        fields = blocks[0] if blocks else Message()
        candidates += _addresses(fields.get_all("Original-Mail-From", []))
        found = _complaint(fields, original)
    delivery_id, tampered = match_verp(secret, candidates)
    return [
        Report(
            kind,
            email,
            status,
            diagnostic,
            delivery_id,
            # several recipients in one report: each its own key, stable across reads
            external_id(key if len(found) == 1 else f"{key} #{number}"),
            message_id,
            tampered,
        )
        for number, (kind, email, status, diagnostic) in enumerate(found, 1)
    ]


Found = list[tuple[BounceKind, str, str, str]]  # kind, email, status, diagnostic


def _delivery_status(part: Message) -> Found:
    found: Found = []
    # the first block is about the message; each later one about a recipient
    for block in _blocks(part)[1:]:
        action = clean(block.get("Action", ""), 40).lower().split(" ")[0]
        status = status_code(clean(block.get("Status", ""), 40))
        if action == "delayed":
            kind = BounceKind.soft
        elif action == "failed":
            kind = failure_kind(status)
        else:
            continue
        # Final-Recipient is required (RFC 3464); Original-Recipient, when there is one, is
        # the address as we sent it, before any forwarding
        recipient = _typed_address(
            block.get("Original-Recipient") or block.get("Final-Recipient") or ""
        )
        if "@" not in recipient:
            continue
        diagnostic = clean(block.get("Diagnostic-Code", ""), DIAGNOSTIC_LENGTH)
        found.append((kind, recipient, status, _after_type(diagnostic)))
    return found


def _complaint(fields: Message, original: Message | None) -> Found:
    feedback = clean(fields.get("Feedback-Type", ""), 40).lower().split(" ")[0]
    if feedback not in _COMPLAINTS:
        return []
    recipients = _addresses(fields.get_all("Original-Rcpt-To", []))
    if not recipients and original is not None:
        recipients = _addresses(original.get_all("To", []))
    email = recipients[0] if recipients else ""
    return [(BounceKind.complaint, email, "", f"feedback-type {feedback}")]


def _first(parts: Sequence[object], types: tuple[str, ...]) -> Message | None:
    for part in parts:
        if isinstance(part, Message) and part.get_content_type() in types:
            return part
    return None


def _original(parts: Sequence[object]) -> Message | None:
    """The headers (and maybe body) of the message the report is about."""
    whole = _first(parts, _ORIGINAL_PARTS)
    if whole is not None:
        inner = whole.get_payload()
        if isinstance(inner, list) and inner and isinstance(inner[0], Message):
            return inner[0]
    headers = _first(parts, _ORIGINAL_HEADER_PARTS)
    if headers is not None:
        return Parser(policy=policy.compat32).parsestr(_text(headers), headersonly=True)
    return None


def _text(part: Message) -> str:
    payload = part.get_payload(decode=True)
    if isinstance(payload, bytes):
        return payload.decode("utf-8", "replace")
    return ""


def _blocks(part: Message) -> list[Message]:
    """The groups of fields of a message/delivery-status or message/feedback-report part.
    The parser splits the first kind into blocks itself; other message/* types come as one
    message whose body holds any further blocks; a part it left alone is split here."""
    payload = part.get_payload()
    if not isinstance(payload, list):
        return _split(_text(part))
    blocks: list[Message] = []
    for block in payload:
        if not isinstance(block, Message):
            continue
        blocks.append(block)
        rest = block.get_payload()
        if isinstance(rest, str) and rest.strip():
            blocks += _split(rest)
    return blocks


def _split(text: str) -> list[Message]:
    parser = Parser(policy=policy.compat32)
    return [
        parser.parsestr(chunk.strip("\r\n") + "\n", headersonly=True)
        for chunk in _BLANK_LINE.split(text)
        if chunk.strip()
    ]


def _addresses(values: Sequence[object]) -> list[str]:
    """The bare addresses in header values, in order."""
    texts = [clean(value, 2000) for value in values[:20]]
    return [address for _, address in getaddresses(texts) if "@" in address][:50]


def _typed_address(value: object) -> str:
    """The address of a "rfc822; reader@example.org" field."""
    return clean(_after_type(clean(value, 1000)), 1000).strip("<>").strip()


def _after_type(value: str) -> str:
    """What follows the type in a "type; value" field ("smtp; 550 ...")."""
    kind, separator, rest = value.partition(";")
    return rest.strip() if separator and " " not in kind.strip() else value
