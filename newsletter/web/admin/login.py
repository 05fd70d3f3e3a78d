"""Logging in and out of /admin. Attempts are limited per client address and per name,
so a password cannot be guessed quickly from one place or against one account."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from newsletter.subscribers.ratelimit import RateLimiter, client_key
from newsletter.web.admin import session
from newsletter.web.admin.common import checked_form, page, redirect, services

router = APIRouter()


class LoginLimits:
    """Failed and successful attempts alike count: 10 per client in 5 minutes, 10 per
    account name in 15 minutes (per process)."""

    def __init__(self) -> None:
        self.clients = RateLimiter(10, 300)
        self.names = RateLimiter(10, 900)

    def allow(self, client: str, name: str) -> bool:
        return self.clients.allow(client) and self.names.allow(name.lower()[:100])


def _safe_next(value: str) -> str:
    """Only a path inside /admin: an open redirect would make the login page a phishing aid."""
    if value.startswith("/admin") and not value.startswith("//") and "\\" not in value:
        return value
    return "/admin"


@router.get("/login")
async def login_page(request: Request, next: str = "/admin") -> Response:
    if session.current(request):
        return redirect(_safe_next(next))
    can = await run_in_threadpool(services(request).access.has_editors)
    context = {"next": _safe_next(next), "username": "", "can_log_in": can}
    return page(request, "admin/login.html", context)


@router.post("/login")
async def login(request: Request) -> Response:
    form = await checked_form(request)
    name = str(form.get("username") or "").strip()
    password = str(form.get("password") or "")
    target = _safe_next(str(form.get("next") or "/admin"))
    context = {"next": target, "username": name, "can_log_in": True}
    limits: LoginLimits = request.app.state.login_limits
    client = client_key(request.client.host) if request.client else "unknown"
    if not limits.allow(client, name):
        context["error"] = "Too many attempts. Wait a few minutes, then try again."
        return page(request, "admin/login.html", context, status=429)
    caller = await run_in_threadpool(services(request).access.authenticate_editor, name, password)
    if caller is None:
        context["error"] = "That name and password do not match an editor's account."
        return page(request, "admin/login.html", context, status=401)
    response = redirect(target)
    session.start(response, request, caller.name)
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    await checked_form(request)
    response = redirect("/admin/login?out=1")
    session.end(response, request)
    return response
