"""Pages and the JSON endpoint for signing up, confirming, choosing and leaving."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from newsletter.errors import InvalidInputError, RateLimited, TokenError
from newsletter.models import utcnow
from newsletter.subscribers import Subscribers
from newsletter.subscribers.ratelimit import client_key
from newsletter.web import csrf
from newsletter.web.limits import public_errors
from newsletter.web.templating import form_page, render

router = APIRouter()
log = logging.getLogger(__name__)
CHECK_INBOX = (
    "Thank you. If this address can receive our newsletter, a message is on its way: "
    "follow the link in it to confirm your subscription."
)


def _service(request: Request) -> Subscribers:
    service: Subscribers = request.app.state.subscribers
    return service


def _client(request: Request) -> str:
    return client_key(request.client.host) if request.client else "unknown"


async def offer(request: Request) -> dict[str, Any]:
    return await run_in_threadpool(_service(request).offer, utcnow())


class SignUp(BaseModel):
    email: str = Field(max_length=320)
    name: str = Field(default="", max_length=300)
    digests: list[str] = Field(default_factory=list, max_length=50)
    tags: list[str] = Field(default_factory=list, max_length=500)


@router.get("/subscribe", response_class=HTMLResponse, include_in_schema=False)
async def subscribe_page(request: Request) -> Response:
    return form_page(request, "subscribe.html", await offer(request))


@router.post("/subscribe", response_class=HTMLResponse, include_in_schema=False)
async def subscribe_form(request: Request) -> Response:
    """The sign-up form; a JSON body here is taken as by /api/v1/subscribe."""
    if request.headers.get("content-type", "").startswith("application/json"):
        try:
            body = SignUp.model_validate_json(await request.body())
        except ValidationError as exc:
            detail = public_errors(exc.errors())  # never the input: bytes, huge, surrogates
            return JSONResponse({"error": "invalid JSON sign-up", "detail": detail}, 422)
        return await subscribe_json(request, body)
    form = await request.form()
    settings = request.app.state.settings
    if not csrf.valid(request, settings.secret, str(form.get("csrf_token") or "")):
        return form_page(
            request,
            "subscribe.html",
            {**await offer(request), "error": "The form expired; please send it again."},
            status=403,
        )
    email = str(form.get("email") or "")
    try:
        await _service(request).subscribe(
            email,
            name=str(form.get("name") or ""),
            digests=[str(v) for v in form.getlist("digests")],
            tags=[str(v) for v in form.getlist("tags")],
            client=_client(request),
        )
    except (InvalidInputError, RateLimited) as exc:
        status = 429 if isinstance(exc, RateLimited) else 400
        context = {**await offer(request), "error": str(exc), "email": email}
        return form_page(request, "subscribe.html", context, status=status)
    return render(request, "message.html", {"title": "Check your inbox", "message": CHECK_INBOX})


@router.post("/api/v1/subscribe", status_code=202)
async def subscribe_json(request: Request, body: SignUp) -> Response:
    """Sign up by JSON. 202 whatever the address was (new, pending or subscribed)."""
    try:
        await _service(request).subscribe(
            body.email, body.name, body.digests, body.tags, client=_client(request)
        )
    except RateLimited as exc:
        return JSONResponse({"error": str(exc)}, status_code=429)
    except InvalidInputError as exc:
        return JSONResponse({"error": str(exc), "field": exc.field, "detail": exc.reason}, 400)
    return JSONResponse({"status": "pending", "message": CHECK_INBOX}, status_code=202)


@router.get("/confirm/{token}", response_class=HTMLResponse, include_in_schema=False)
async def confirm_page(request: Request, token: str) -> Response:
    """A page with a button: the link scanners of mail providers follow every link, and
    must not subscribe anybody who never clicked."""
    await run_in_threadpool(_service(request).check_confirmation, token)
    return render(request, "confirm.html", {"token": token})


@router.post("/confirm/{token}", response_class=HTMLResponse, include_in_schema=False)
async def confirm(request: Request, token: str) -> Response:
    service = _service(request)
    prefs = await run_in_threadpool(service.confirm, token)
    return render(
        request,
        "message.html",
        {
            "title": "You are subscribed",
            "message": f"{prefs.email} will receive {request.app.state.settings.site.title}.",
            "link": (service.link("preferences", prefs.token), "Choose what you receive"),
        },
    )


@router.get("/unsubscribe/{token}", response_class=HTMLResponse, include_in_schema=False)
async def unsubscribe_page(request: Request, token: str) -> Response:
    """A page with a button: link scanners that follow links unsubscribe nobody."""
    await run_in_threadpool(_service(request).check_link, token, "unsubscribe")
    return render(request, "unsubscribe.html", {"token": token})


@router.post("/unsubscribe/{token}", response_class=HTMLResponse, include_in_schema=False)
async def unsubscribe(request: Request, token: str) -> Response:
    """RFC 8058 one-click: no cookie, no login, 200 without a redirect."""
    email = await run_in_threadpool(_service(request).unsubscribe, token)
    return render(
        request,
        "message.html",
        {
            "title": "You are unsubscribed",
            "message": f"{email} will receive no more email from us.",
        },
    )


@router.get("/preferences/{token}", response_class=HTMLResponse, include_in_schema=False)
async def preferences_page(request: Request, token: str) -> Response:
    prefs = await run_in_threadpool(_service(request).preferences, token)
    return form_page(request, "preferences.html", {"prefs": prefs})


@router.post("/preferences/{token}", response_class=HTMLResponse, include_in_schema=False)
async def preferences_save(request: Request, token: str) -> Response:
    form = await request.form()
    service = _service(request)
    try:
        if not csrf.valid(request, service.settings.secret, str(form.get("csrf_token") or "")):
            prefs = await run_in_threadpool(service.preferences, token)
            context = {"prefs": prefs, "error": "The form expired; please send it again."}
            return form_page(request, "preferences.html", context, status=403)
        prefs = await run_in_threadpool(
            service.save_preferences,
            token,
            [str(v) for v in form.getlist("digests")],
            [str(v) for v in form.getlist("tags")],
        )
    except TokenError:
        raise  # answered by the application's handler for bad links
    except InvalidInputError as exc:
        prefs = await run_in_threadpool(service.preferences, token)
        return form_page(request, "preferences.html", {"prefs": prefs, "error": str(exc)}, 400)
    return form_page(request, "preferences.html", {"prefs": prefs, "saved": True})
