"""Pages and the JSON endpoint for signing up, confirming, choosing and leaving, in
readers' words: what each digest contains and how often it comes, errors next to the field
they are about, and plain pages for links that no longer work."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from newsletter.digests.schedule import in_words
from newsletter.errors import InvalidInputError, RateLimited, TokenError
from newsletter.models import utcnow
from newsletter.subscribers import Offered, Preferences, Subscribers
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
FORM_EXPIRED = (
    "This form was open for too long or came from another page. Please check it and send it again."
)
UNDO = "resubscribe"  # the undo button's page, named like its tokens' purpose
# a field the form has no box for: what went wrong, said without the field's name
CHOICE_WORDS = {
    "digests": "Please choose one of the newsletters listed.",
    "tags": "Please choose among the topics listed.",
}
# after the reason a bad link gives, what the reader can do about it
LINK_ADVICE = {
    "confirm": "You can sign up again: we will send you a new link.",
    UNDO: "You can still sign up again: we will send you a link to confirm.",
    "preferences": "The preferences link in the latest email we sent you works.",
    "unsubscribe": "The unsubscribe link in the latest email we sent you works.",
}
LINK_TITLES = {"expired": "This link has expired", "used": "This link was already used"}


def _service(request: Request) -> Subscribers:
    service: Subscribers = request.app.state.subscribers
    return service


def _client(request: Request) -> str:
    return client_key(request.client.host) if request.client else "unknown"


def how_often(digest: Offered) -> str:
    """When a digest comes, as a reader would say it: "Every day at 07:00 (Asia/Jakarta
    time)". A schedule the editors' form cannot write is not spelled out as cron."""
    if digest.paused:
        return "Paused at the moment: no issue goes out until the editors resume it"
    words = in_words(digest.cron)
    if words.startswith("cron:"):
        words = "On a schedule of its own"
    zone = "UTC" if digest.timezone in ("UTC", "Etc/UTC") else f"{digest.timezone} time"
    return f"{words} ({zone})"


async def offer(request: Request) -> dict[str, Any]:
    """What the sign-up form shows: `digests` (Offered, with `frequency` in words; each
    starts (slug, name), as always) and `tags`."""
    found = await run_in_threadpool(_service(request).offer, utcnow())
    digests: list[Offered] = list(found["digests"])
    found["digests"] = [d._replace(frequency=how_often(d)) for d in digests]
    return found


def _choice_error(exc: InvalidInputError) -> str:
    """A refused choice of digests or topics (only an old or altered form sends one)."""
    advice = CHOICE_WORDS.get(exc.field or "")
    return f"{advice} ({exc.reason})" if advice else exc.reason


async def _preferences_page(
    request: Request, context: dict[str, Any], status: int = 200
) -> Response:
    """The preferences page, with each digest's schedule in words."""
    digests = (await offer(request))["digests"]
    frequency = {d.slug: d.frequency for d in digests}
    return form_page(request, "preferences.html", {**context, "frequency": frequency}, status)


def _bad_link(request: Request, exc: TokenError, purpose: str) -> Response:
    """A link from an email that no longer works: what happened and what to do now."""
    context: dict[str, object] = {
        "title": LINK_TITLES.get(exc.kind, "This link does not work"),
        "message": f"{exc.reason} {LINK_ADVICE.get(purpose, '')}".strip(),
    }
    if purpose in ("confirm", UNDO):
        context["link"] = (f"{request.app.state.settings.base_url}/subscribe", "Sign up again")
    return render(request, "message.html", context, status=400)


class SignUp(BaseModel):
    email: str = Field(max_length=320)
    name: str = Field(default="", max_length=300)
    digests: list[str] = Field(default_factory=list, max_length=50)
    tags: list[str] = Field(default_factory=list, max_length=500)


@router.get("/subscribe", response_class=HTMLResponse, include_in_schema=False)
async def subscribe_page(request: Request) -> Response:
    return form_page(request, "subscribe.html", await offer(request))


def _typed(form: FormData) -> dict[str, Any]:
    """What the reader filled in, to show again with the errors."""
    return {
        "email": str(form.get("email") or ""),
        "name": str(form.get("name") or ""),
        "digests": [str(v) for v in form.getlist("digests")],
        "tags": [str(v) for v in form.getlist("tags")],
        "errors": {},
    }


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
    signup = _typed(form)
    if not csrf.valid(request, settings.secret, str(form.get("csrf_token") or "")):
        expired = {**await offer(request), "error": FORM_EXPIRED, "signup": signup}
        return form_page(request, "subscribe.html", expired, status=403)
    try:
        await _service(request).subscribe(
            signup["email"],
            name=signup["name"],
            digests=signup["digests"],
            tags=signup["tags"],
            client=_client(request),
        )
    except RateLimited as exc:
        context = {**await offer(request), "error": str(exc), "signup": signup}
        return form_page(request, "subscribe.html", context, status=429)
    except InvalidInputError as exc:
        context = {**await offer(request), "signup": signup}
        if exc.field in ("email", "name"):
            signup["errors"][exc.field] = exc.reason
        else:
            context["error"] = _choice_error(exc)
        return form_page(request, "subscribe.html", context, status=400)
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
    try:
        await run_in_threadpool(_service(request).check_confirmation, token)
    except TokenError as exc:
        return _bad_link(request, exc, "confirm")
    return render(request, "confirm.html", {"token": token})


@router.post("/confirm/{token}", response_class=HTMLResponse, include_in_schema=False)
async def confirm(request: Request, token: str) -> Response:
    service = _service(request)
    try:
        prefs = await run_in_threadpool(service.confirm, token)
    except TokenError as exc:
        return _bad_link(request, exc, "confirm")
    return _subscribed(request, prefs, "You are subscribed", "")


def _subscribed(request: Request, prefs: Preferences, title: str, again: str) -> Response:
    receiving = [d.name for d in prefs.digests if d.chosen]
    what = " and ".join(receiving) if receiving else request.app.state.settings.site.title
    return render(
        request,
        "message.html",
        {
            "title": title,
            "message": f"{prefs.email} will receive {what}{again}.",
            "link": (_service(request).link("preferences", prefs.token), "Choose what you receive"),
        },
    )


@router.get("/unsubscribe/{token}", response_class=HTMLResponse, include_in_schema=False)
async def unsubscribe_page(request: Request, token: str) -> Response:
    """A page with a button: link scanners that follow links unsubscribe nobody."""
    try:
        await run_in_threadpool(_service(request).check_link, token, "unsubscribe")
    except TokenError as exc:
        return _bad_link(request, exc, "unsubscribe")
    return render(request, "unsubscribe.html", {"token": token})


@router.post("/unsubscribe/{token}", response_class=HTMLResponse, include_in_schema=False)
async def unsubscribe(request: Request, token: str) -> Response:
    """RFC 8058 one-click: no cookie, no login, 200 without a redirect. The page offers to
    undo (a form with a CSRF token and a short-lived undo token: see Subscribers.undo)."""
    try:
        left = await run_in_threadpool(_service(request).unsubscribe, token)
    except TokenError as exc:
        return _bad_link(request, exc, "unsubscribe")
    return form_page(request, "unsubscribe.html", {"left": left})


@router.post("/resubscribe/{token}", response_class=HTMLResponse, include_in_schema=False)
async def undo_unsubscribe(request: Request, token: str) -> Response:
    """The undo button of the unsubscribed page (and of a preferences page that just
    unsubscribed): the same reader confirming again, once, within the hour."""
    form = await request.form()
    if not csrf.valid(
        request, request.app.state.settings.secret, str(form.get("csrf_token") or "")
    ):
        expired: dict[str, object] = {"title": "Form expired", "message": FORM_EXPIRED}
        return render(request, "message.html", expired, status=403)
    try:
        prefs = await run_in_threadpool(_service(request).undo, token)
    except TokenError as exc:
        return _bad_link(request, exc, UNDO)
    return _subscribed(request, prefs, "You are subscribed again", " again")


@router.get("/preferences/{token}", response_class=HTMLResponse, include_in_schema=False)
async def preferences_page(request: Request, token: str) -> Response:
    try:
        prefs = await run_in_threadpool(_service(request).preferences, token)
    except TokenError as exc:
        return _bad_link(request, exc, "preferences")
    return await _preferences_page(request, {"prefs": prefs})


@router.post("/preferences/{token}", response_class=HTMLResponse, include_in_schema=False)
async def preferences_save(request: Request, token: str) -> Response:
    form = await request.form()
    service = _service(request)
    name = form.get("name")
    try:
        if not csrf.valid(request, service.settings.secret, str(form.get("csrf_token") or "")):
            prefs = await run_in_threadpool(service.preferences, token)
            expired = {"prefs": prefs, "error": FORM_EXPIRED}
            return await _preferences_page(request, expired, status=403)
        prefs = await run_in_threadpool(
            service.save_preferences,
            token,
            [str(v) for v in form.getlist("digests")],
            [str(v) for v in form.getlist("tags")],
            None,
            None if name is None else str(name),
        )
    except TokenError as exc:
        return _bad_link(request, exc, "preferences")
    except InvalidInputError as exc:
        prefs = await run_in_threadpool(service.preferences, token)
        context: dict[str, Any] = {"prefs": prefs, "errors": {}, "typed_name": name}
        if exc.field == "name":
            context["errors"]["name"] = exc.reason
        else:
            context["error"] = _choice_error(exc)
        return await _preferences_page(request, context, 400)
    return await _preferences_page(request, {"prefs": prefs, "saved": True})


@router.post("/preferences/{token}/again", response_class=HTMLResponse, include_in_schema=False)
async def preferences_again(request: Request, token: str) -> Response:
    """Not subscribed (or not confirmed): ask for a confirmation email from the preferences
    page. It goes through the sign-up queue, its rate limits and its confirmation."""
    form = await request.form()
    service = _service(request)
    try:
        if not csrf.valid(request, service.settings.secret, str(form.get("csrf_token") or "")):
            prefs = await run_in_threadpool(service.preferences, token)
            context = {"prefs": prefs, "error": FORM_EXPIRED}
            return await _preferences_page(request, context, status=403)
        await service.come_back(token, _client(request))
    except TokenError as exc:
        return _bad_link(request, exc, "preferences")
    except (InvalidInputError, RateLimited) as exc:
        prefs = await run_in_threadpool(service.preferences, token)
        status = 429 if isinstance(exc, RateLimited) else 400
        return await _preferences_page(request, {"prefs": prefs, "error": str(exc)}, status)
    return render(request, "message.html", {"title": "Check your inbox", "message": CHECK_INBOX})
