"""Bearer tokens on /api/v1: 401 without a valid token, 403 for a read token on a write.

The check is a dependency of the whole /api/v1 router, so no route can be added without
it; the public sign-up endpoint lives on its own router."""

from __future__ import annotations

from fastapi import HTTPException, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from newsletter.access import Access, Caller
from newsletter.models import Scope

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

bearer = HTTPBearer(
    auto_error=False,
    bearerFormat="token",
    description="A token from `newsletter tokens create NAME [--scope read|write]`.",
)


def _unauthorized(reason: str, error: str | None = None) -> HTTPException:
    challenge = 'Bearer realm="api"' + (f', error="{error}"' if error else "")
    return HTTPException(401, reason, headers={"WWW-Authenticate": challenge})


async def authorize(
    request: Request, credentials: HTTPAuthorizationCredentials | None = Security(bearer)
) -> Caller:
    """The caller of this request, allowed to make it; otherwise 401 or 403."""
    if credentials is None:
        raise _unauthorized("a bearer token is required (Authorization: Bearer <token>)")
    access: Access = request.app.state.services.access
    caller = await run_in_threadpool(access.authenticate_token, credentials.credentials)
    if caller is None:
        raise _unauthorized("the token is not valid: unknown or revoked", "invalid_token")
    if request.method not in READ_METHODS and caller.scope != Scope.write:
        raise HTTPException(
            403, f"token {caller.name!r} may only read; this needs a token with --scope write"
        )
    request.state.caller = caller
    return caller
