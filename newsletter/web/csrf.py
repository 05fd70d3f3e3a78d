"""CSRF protection for HTML forms: a random cookie and a form field holding its HMAC.

A cross-site page can make a browser send the cookie but cannot read it, so it cannot
produce the field. JSON endpoints need no token: browsers do not send cross-origin JSON
without a CORS preflight, which this service never grants.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from starlette.requests import Request
from starlette.responses import Response

COOKIE = "newsletter_csrf"


def _expected(secret: bytes, cookie: str) -> str:
    return hmac.new(secret, b"csrf:" + cookie.encode(), hashlib.sha256).hexdigest()


def token_for(request: Request, secret: bytes) -> tuple[str, str | None]:
    """The form token for this browser, and a new cookie value to set if it had none."""
    cookie = request.cookies.get(COOKIE)
    fresh = None
    if not cookie or len(cookie) > 100:
        cookie = fresh = secrets.token_urlsafe(24)
    return _expected(secret, cookie), fresh


def set_cookie(response: Response, value: str | None, secure: bool) -> None:
    if value is not None:
        response.set_cookie(COOKIE, value, httponly=True, samesite="lax", secure=secure)


def valid(request: Request, secret: bytes, submitted: str | None) -> bool:
    cookie = request.cookies.get(COOKIE)
    if not cookie or not submitted:
        return False
    return hmac.compare_digest(_expected(secret, cookie).encode(), submitted.encode())
