"""The service's errors as JSON answers under /api/: 404, 409, 422 and 429, in FastAPI's
own shape ({"detail": ...}), a 422 naming the field and the reason like a validation error."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from newsletter.errors import (
    DuplicateError,
    InvalidInputError,
    NewsletterError,
    NotFoundError,
    RateLimited,
)


def is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def answer(request: Request, exc: NewsletterError) -> Response:
    """The JSON answer for `exc` on an /api/ route."""
    if isinstance(exc, NotFoundError):
        return JSONResponse({"detail": str(exc)}, status_code=404)
    if isinstance(exc, DuplicateError):
        return JSONResponse({"detail": str(exc)}, status_code=409)
    if isinstance(exc, RateLimited):
        return JSONResponse({"detail": str(exc)}, status_code=429, headers={"Retry-After": "60"})
    if isinstance(exc, InvalidInputError):
        loc = ["body", exc.field] if exc.field else ["body"]
        item = {"type": "value_error", "loc": loc, "msg": exc.reason}
        return JSONResponse({"detail": [item]}, status_code=422)
    return JSONResponse({"detail": str(exc)}, status_code=400)
