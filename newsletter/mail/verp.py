"""VERP (variable envelope return path): each delivery's envelope sender names it, as
bounces+<delivery id>-<mac>@domain, so a bounce that comes back days later, even one whose
report is garbled, leads to the row it is about. The mac (HMAC with the site's secret) keeps
anyone from forging bounces for rows they guess. Only digits and lowercase hex are used:
some relays lowercase local parts."""

from __future__ import annotations

import hashlib
import hmac
import re

_TAG = re.compile(r"^(?P<base>[^+@]+)\+(?P<id>\d{1,18})-(?P<mac>[0-9a-f]{10})@(?P<domain>.+)$")


def _mac(secret: bytes, delivery_id: int) -> str:
    return hmac.new(secret, f"verp:{delivery_id}".encode(), hashlib.sha256).hexdigest()[:10]


def encode(secret: bytes, return_path: str, delivery_id: int) -> str:
    """The envelope sender of delivery `delivery_id`."""
    local, _, domain = return_path.rpartition("@")
    return f"{local}+{delivery_id}-{_mac(secret, delivery_id)}@{domain}"


def decode(secret: bytes, address: str) -> int | None:
    """The delivery id an envelope sender (or a bounce's To) names; None when it names none
    or its mac is wrong."""
    match = _TAG.match(address.strip().strip("<>").lower())
    if match is None:
        return None
    delivery_id = int(match.group("id"))
    if not hmac.compare_digest(match.group("mac"), _mac(secret, delivery_id)):
        return None
    return delivery_id
