"""The JSON API under /api/v1 for editors' tools: every route needs a bearer token
(web.api.auth); reads need any token, writes a write token. One module per resource."""

from fastapi import APIRouter, Security

from newsletter.web.api import articles, digests, runs, subscribers, taxonomy
from newsletter.web.api.auth import authorize

router = APIRouter(prefix="/api/v1", dependencies=[Security(authorize)])
for module in (articles, taxonomy, digests, runs, subscribers):
    router.include_router(module.router)

__all__ = ["router"]
