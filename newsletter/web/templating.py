"""The one function routes use to answer with a page."""

from __future__ import annotations

from typing import Any

from jinja2 import Environment
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from newsletter.web import csrf


def render(
    request: Request, template: str, context: dict[str, object], status: int = 200
) -> HTMLResponse:
    env: Environment = request.app.state.templates
    html = env.get_template(template).render(request=request, **context)
    return HTMLResponse(html, status_code=status)


def form_page(
    request: Request, template: str, context: dict[str, Any], status: int = 200
) -> Response:
    """A page with a form: carries the CSRF token and sets its cookie when needed."""
    settings = request.app.state.settings
    token, fresh = csrf.token_for(request, settings.secret)
    response = render(request, template, {**context, "csrf_token": token}, status=status)
    csrf.set_cookie(response, fresh, settings.base_url.startswith("https://"))
    return response
