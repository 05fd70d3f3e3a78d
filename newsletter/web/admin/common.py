"""What every /admin page shares: the logged-in editor, CSRF-checked forms, rendering."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import Depends
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from newsletter.access import Access, Caller
from newsletter.models import Scope
from newsletter.services import Services
from newsletter.web import csrf
from newsletter.web.admin import session
from newsletter.web.templating import form_page


class LoginRequired(Exception):
    """Raised by `editor` when nobody is logged in; answered with a redirect to the login."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


class FormExpired(Exception):
    """A form arrived without a valid CSRF token: answered 403 with a page saying so."""


def services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found


async def editor(request: Request) -> Caller:
    """The editor logged in on this browser (a dependency of every page but the login)."""
    name = session.current(request)
    access: Access = services(request).access
    if name is None or not await run_in_threadpool(access.editor_exists, name):
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise LoginRequired(target)
    caller = Caller(name, Scope.write)
    request.state.editor = caller
    return caller


Editor = Depends(editor)


async def checked_form(request: Request) -> FormData:
    """The submitted form, when it carries this browser's CSRF token; else FormExpired."""
    form = await request.form()
    secret: bytes = request.app.state.settings.secret
    if not csrf.valid(request, secret, str(form.get("csrf_token") or "")):
        raise FormExpired()
    return form


def page(request: Request, template: str, context: dict[str, Any], status: int = 200) -> Response:
    """An admin page: the editor, the CSRF token for its forms, the current section."""
    who = getattr(request.state, "editor", None)
    return form_page(request, template, {"editor": who, **context}, status=status)


def redirect(path: str, notice: str | None = None) -> Response:
    """303 to another admin page after a form did its work (so reloading repeats nothing),
    with a one-line notice the next page shows."""
    if notice:
        path += ("&" if "?" in path else "?") + "notice=" + quote(notice)
    return RedirectResponse(path, status_code=303)


def login_redirect(next_path: str) -> Response:
    return RedirectResponse("/admin/login?next=" + quote(next_path, safe=""), status_code=303)
