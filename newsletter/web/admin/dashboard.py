"""/admin: what an editor looks at first. The next issues with their times in each digest's
own zone, recent runs with their progress, subscribers by status and by digest, and the
newest articles."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from newsletter import articles, subscribers
from newsletter.digests.service import DigestView
from newsletter.web.admin.common import page, services

router = APIRouter()
RECENT_RUNS = 8
RECENT_ARTICLES = 8


@dataclass(frozen=True)
class NextIssue:
    digest: DigestView
    at: datetime  # aware UTC


def _overview(request: Request) -> dict[str, Any]:
    built = services(request)
    digests = built.digests.all()
    upcoming = sorted(
        (NextIssue(d, d.next_run) for d in digests if d.next_run is not None and not d.paused),
        key=lambda issue: issue.at,
    )
    return {
        "digests": digests,
        "upcoming": upcoming,
        "paused": [d for d in digests if d.paused],
        "runs": built.digests.runs(limit=RECENT_RUNS),
        "counts": subscribers.subscriber_counts(built.engine),
        "articles": articles.list_articles(built.engine, limit=RECENT_ARTICLES),
        "now": datetime.now(UTC),
    }


@router.get("")
async def dashboard(request: Request) -> Response:
    return page(request, "admin/dashboard.html", await run_in_threadpool(_overview, request))
