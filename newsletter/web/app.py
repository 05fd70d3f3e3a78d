"""Application wiring: one place that builds the engine, templates and routes at start-up."""

from __future__ import annotations

import sqlalchemy as sa
from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response

from newsletter.config import Settings
from newsletter.database import open_database
from newsletter.errors import NotFoundError
from newsletter.web import pages
from newsletter.web.templating import render, template_environment


def create_app(settings: Settings, engine: sa.Engine | None = None) -> FastAPI:
    """The whole HTTP service. Opens (and migrates) the database unless `engine` is given."""
    engine = engine or open_database(settings.database_url)
    app = FastAPI(title=settings.site.title, docs_url="/api/docs", openapi_url="/api/openapi.json")
    app.state.settings = settings
    app.state.engine = engine
    app.state.templates = template_environment(settings)

    async def not_found(request: Request, exc: Exception) -> Response:
        return render(request, "error.html", {"message": str(exc), "status": 404}, status=404)

    app.add_exception_handler(NotFoundError, not_found)
    app.include_router(pages.router)
    return app
