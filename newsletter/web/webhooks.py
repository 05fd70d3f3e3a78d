"""POST /webhooks/{ses,mailgun,postmark,sendgrid}: bounce and complaint events from mail
providers (newsletter.bounces.webhooks checks and reads them).

Answers: 200 with counts when the events were recorded (or ignored as neither bounce nor
complaint); 400 naming what is wrong with an unreadable body; 401 without credentials (or
Postmark's wrong ones); 403 with a wrong signature or topic; 404 for a provider whose
setting is empty; 503 when a proof could not be checked now (an SNS certificate that did
not download), so that the provider tries again.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from newsletter.bounces import PROVIDERS, Bounces, WebhookRefused
from newsletter.errors import InvalidInputError

router = APIRouter()
log = logging.getLogger(__name__)
STATUS = {"not configured": 404, "unauthenticated": 401, "forged": 403, "unavailable": 503}


@router.post("/webhooks/{provider}")
async def webhook(request: Request, provider: str) -> Response:
    if provider not in PROVIDERS:
        return JSONResponse({"error": "no such webhook"}, status_code=404)
    bounces: Bounces = request.app.state.services.bounces
    body = await request.body()
    try:
        outcome = await run_in_threadpool(bounces.webhook, provider, body, request.headers)
    except WebhookRefused as exc:
        status = STATUS.get(exc.kind, 403)
        if status != 404:
            log.warning("%s webhook refused: %s", provider, exc.reason)
        headers = {}
        if status == 401 and provider == "postmark":
            headers["WWW-Authenticate"] = 'Basic realm="bounces"'
        if status == 503:
            headers["Retry-After"] = "60"  # SNS retries on its own schedule anyway
        return JSONResponse({"error": str(exc)}, status_code=status, headers=headers)
    except InvalidInputError as exc:
        return JSONResponse({"error": str(exc)}, status_code=400)
    return JSONResponse(
        {
            "recorded": outcome.recorded,
            "duplicates": outcome.duplicates,
            "unmatched": outcome.unmatched + outcome.forged,
        }
    )
