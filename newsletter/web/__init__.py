"""The HTTP entry point: `create_app(settings)` builds the ASGI application."""

from newsletter.web.app import create_app

__all__ = ["create_app"]
