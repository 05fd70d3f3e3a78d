"""Signed, single-purpose tokens for links in emails (pure; the secret and `now` come in).

A token is base64url(JSON payload) + "." + base64url(HMAC-SHA256). The payload names its
purpose, so a preferences link cannot be used to confirm, and optionally an expiry. Whether
a token was already used is the caller's business: confirmation tokens carry a nonce that
the subscriber row holds until it is used.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import datetime

from newsletter import b64
from newsletter.errors import TokenError

__all__ = ["Claims", "TokenError", "sign", "verify"]


@dataclass(frozen=True)
class Claims:
    purpose: str
    subject: int  # the subscriber id
    nonce: str
    expires: int | None  # unix seconds


def _mac(secret: bytes, payload: str) -> str:
    return b64.encode(hmac.new(secret, payload.encode(), hashlib.sha256).digest())


def sign(secret: bytes, purpose: str, subject: int, nonce: str, expires: datetime | None) -> str:
    stamp = int(expires.timestamp()) if expires else None
    payload = b64.encode(
        json.dumps([purpose, subject, nonce, stamp], separators=(",", ":")).encode()
    )
    return f"{payload}.{_mac(secret, payload)}"


def verify(secret: bytes, token: str, purpose: str, now: datetime) -> Claims:
    """The claims of a genuine, unexpired token for `purpose`; TokenError otherwise."""
    payload, _, mac = token.partition(".")
    if not token.isascii():  # a genuine token is base64url; anything else (surrogates too)
        raise TokenError("tampered", "This link is not valid: it was changed or cut short.")
    if not payload or not hmac.compare_digest(mac.encode(), _mac(secret, payload).encode()):
        raise TokenError("tampered", "This link is not valid: it was changed or cut short.")
    try:
        kind, subject, nonce, expires = json.loads(b64.decode(payload))
    except (ValueError, TypeError):
        raise TokenError("tampered", "This link is not valid.") from None
    if not (
        isinstance(kind, str)
        and type(subject) is int
        and isinstance(nonce, str)
        and (expires is None or type(expires) is int)
    ):
        raise TokenError("tampered", "This link is not valid.")
    if kind != purpose:
        raise TokenError("wrong purpose", "This link is not meant for this page.")
    if expires is not None and now.timestamp() > expires:
        raise TokenError("expired", "This link has expired. Please sign up again.")
    return Claims(kind, int(subject), str(nonce), expires)
