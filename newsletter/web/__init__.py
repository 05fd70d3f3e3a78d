"""The HTTP entry point: `create_app(settings)` builds the ASGI application.

The app (FastAPI and every route) is imported on first use of `create_app`, not with the
package: commands that only read `web.limits` (the CLI's defaults), such as a delivery
worker, do not carry the web stack in memory."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from newsletter.web.app import create_app

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from newsletter.web.app import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
