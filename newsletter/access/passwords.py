"""Password hashing with scrypt (pure; hashlib's OpenSSL scrypt, RFC 7914).

A hash is `scrypt$n$r$p$salt$key`, salt and key in base64url, so the cost can be raised
later without breaking stored passwords: `verify` reads the parameters from the hash."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from newsletter import b64

# 2**15 with r=8 costs 32 MiB and ~50 ms a check here: slow for guessing, fine for a login
N, R, P = 2**15, 8, 1
KEY_BYTES = 32
MIN_LENGTH = 10


def _derive(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password.encode(),
        salt=salt,
        n=n,
        r=r,
        p=p,
        maxmem=2 * 128 * n * r + 2**20,
        dklen=KEY_BYTES,
    )


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    key = _derive(password, salt, N, R, P)
    return f"scrypt${N}${R}${P}${b64.encode(salt)}${b64.encode(key)}"


def verify(password: str, stored: str) -> bool:
    """Whether `password` matches `stored`; False for a hash this module did not write."""
    try:
        kind, n, r, p, salt, key = stored.split("$")
        if kind != "scrypt":
            return False
        derived = _derive(password, b64.decode(salt), int(n), int(r), int(p))
    except (ValueError, MemoryError):
        return False
    return hmac.compare_digest(derived, b64.decode(key))


def weakness(password: str) -> str | None:
    """Why `password` may not be used, in words; None when it may."""
    if len(password) < MIN_LENGTH:
        return f"must be at least {MIN_LENGTH} characters long"
    if len(password) > 1000:
        return "must be at most 1,000 characters long"
    return None
