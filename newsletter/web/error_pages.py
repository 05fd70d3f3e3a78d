"""Errors as readers see them: the site's own page (templates/error.html) for unknown paths,
refused methods and failures, and FastAPI's JSON ({"detail": ...}) under /api/.

A 404 page is still a 404 and helps the reader on (front page, search, topics, feeds); a 500
page says nothing of what failed (the traceback goes to the log)."""

from __future__ import annotations

import http
import logging

from fastapi.exception_handlers import http_exception_handler
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from newsletter.web.api.errors import is_api
from newsletter.web.templating import render

log = logging.getLogger(__name__)
TITLES = {
    404: "Page not found",
    405: "Not possible here",
    500: "Something went wrong",
}
MESSAGES = {
    404: "There is no page at this address. It may have moved, or the address may have a typo.",
    405: "This address does not take that kind of request. Open it as an ordinary link.",
    500: "Something went wrong on our side and the page could not be shown. Please try "
    "again in a moment.",
}


def error_page(request: Request, status: int, message: str | None = None) -> Response:
    """The site's page for an error `status`, with `message` or a plain default."""
    try:
        phrase = http.HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    context: dict[str, object] = {
        "status": status,
        "title": TITLES.get(status, phrase),
        "message": message or MESSAGES.get(status, "This request could not be answered."),
    }
    return render(request, "error.html", context, status=status)


async def http_error(request: Request, exc: Exception) -> Response:
    """Unknown paths (404), refused methods (405) and any HTTPException a route raised."""
    assert isinstance(exc, HTTPException)
    if is_api(request):
        return await http_exception_handler(request, exc)
    response = error_page(request, exc.status_code)
    if exc.headers:  # Allow on a 405, WWW-Authenticate on a 401
        response.headers.update(exc.headers)
    return response


async def server_error(request: Request, exc: Exception) -> Response:
    """An exception no handler took: 500 without details (the server logs the traceback)."""
    if is_api(request):
        return JSONResponse({"detail": "Internal Server Error"}, status_code=500)
    try:
        return error_page(request, 500)
    except Exception:  # the page itself failed (a broken template): still answer
        log.exception("the error page could not be rendered")
        return PlainTextResponse("Internal Server Error", status_code=500)
