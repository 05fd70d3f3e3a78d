"""Jinja2 environment for pages, and the one function routes use to answer with a page."""

from __future__ import annotations

from datetime import datetime

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse

from newsletter.config import Settings
from newsletter.resources import templates_dir


def template_environment(settings: Settings) -> Environment:
    env = Environment(
        loader=FileSystemLoader(templates_dir()),
        autoescape=select_autoescape(["html", "xml"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    tz = settings.site.tz

    def localdate(value: datetime | None, fmt: str = "%-d %B %Y") -> str:
        """A UTC datetime shown in the publication's time zone."""
        return value.astimezone(tz).strftime(fmt) if value else ""

    env.filters["localdate"] = localdate
    env.globals["site"] = settings.site
    env.globals["base_url"] = settings.base_url
    return env


def render(
    request: Request, template: str, context: dict[str, object], status: int = 200
) -> HTMLResponse:
    env: Environment = request.app.state.templates
    html = env.get_template(template).render(request=request, **context)
    return HTMLResponse(html, status_code=status)
