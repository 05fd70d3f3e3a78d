"""Editors' sessions in a signed cookie: the editor's name and an expiry, HMAC-signed with
the site secret under a purpose of its own, so no other signed value can pass for one."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

from starlette.requests import Request
from starlette.responses import Response

from newsletter import b64

COOKIE = "newsletter_admin"
LIFETIME = 12 * 3600  # a working day; then the editor logs in again


def _mac(secret: bytes, payload: str) -> str:
    return b64.encode(
        hmac.new(secret, b"admin-session:" + payload.encode(), hashlib.sha256).digest()
    )


def encode(secret: bytes, name: str, now: float | None = None) -> str:
    expires = int((time.time() if now is None else now) + LIFETIME)
    payload = b64.encode(json.dumps({"n": name, "e": expires}, separators=(",", ":")).encode())
    return f"{payload}.{_mac(secret, payload)}"


def decode(secret: bytes, value: str, now: float | None = None) -> str | None:
    """The editor's name in a valid, unexpired cookie; None otherwise."""
    if len(value) > 1000 or value.count(".") != 1:
        return None
    payload, mac = value.split(".")
    if not hmac.compare_digest(_mac(secret, payload).encode(), mac.encode()):
        return None
    try:
        data = json.loads(b64.decode(payload))
        name, expires = str(data["n"]), int(data["e"])
    except (ValueError, KeyError, TypeError):
        return None
    return name if expires > (time.time() if now is None else now) else None


def secure(request: Request) -> bool:
    """Secure cookies when the site is served over https (directly or behind a proxy)."""
    base_url: str = request.app.state.settings.base_url
    return request.url.scheme == "https" or base_url.startswith("https://")


def start(response: Response, request: Request, name: str) -> None:
    secret: bytes = request.app.state.settings.secret
    response.set_cookie(
        COOKIE,
        encode(secret, name),
        max_age=LIFETIME,
        path="/admin",
        httponly=True,
        samesite="strict",
        secure=secure(request),
    )


def end(response: Response, request: Request) -> None:
    response.delete_cookie(
        COOKIE, path="/admin", httponly=True, samesite="strict", secure=secure(request)
    )


def current(request: Request) -> str | None:
    value = request.cookies.get(COOKIE)
    if not value:
        return None
    secret: bytes = request.app.state.settings.secret
    return decode(secret, value)
