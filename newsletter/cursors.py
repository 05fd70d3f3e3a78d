"""Opaque page cursors (pure): a position in a list's order as base64url of a JSON array,
so a link carries no syntax of its own. Each list checks the shape of what it reads back
and refuses, in its own words, a cursor it did not give out."""

from __future__ import annotations

import json
from typing import Any

from newsletter import b64

MAX_LENGTH = 600


def encode(*key: str | int) -> str:
    return b64.encode(json.dumps(list(key), ensure_ascii=False, separators=(",", ":")).encode())


def decode(cursor: str, max_length: int = MAX_LENGTH) -> list[Any] | None:
    """The key a cursor from `encode` holds; None for anything else."""
    if len(cursor) > max_length or not cursor.isascii():
        return None
    try:
        key = json.loads(b64.decode(cursor))
    except ValueError:  # bad base64 (binascii.Error), bytes that are not UTF-8 or JSON
        return None
    return key if isinstance(key, list) else None
