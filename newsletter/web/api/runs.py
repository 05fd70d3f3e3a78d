"""/api/v1 routes for runs: list (newest first, a page at a time), show with counts and
pace, pause, resume, cancel. The same use cases as `newsletter runs ...`.

A pause, resume or cancel the run's state does not allow (pausing a run that is not
composing or sending, resuming one that is not paused, cancelling one that has ended) is
refused with 422 naming `run` in the path, as the use cases refuse it."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from newsletter.digests.service import RUN_PAGE_MAX, Digests, RunView
from newsletter.models import RunStatus
from newsletter.web.api.digests import SLUG_PATTERN, RunOut, run_out
from newsletter.web.api.schemas import INVALID, Problem, sent_in

router = APIRouter(tags=["runs"])

# ids are 32-bit integers on PostgreSQL: a larger one names no run, and is refused unasked
RunId = Annotated[int, Path(ge=1, le=2**31 - 1, description="The run's id.")]
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": Problem, "description": "No such run"}}
REFUSED: dict[int | str, dict[str, Any]] = {
    422: {
        "model": INVALID[422]["model"],
        "description": "Refused: `loc` names the field (`run` when its state does not "
        "allow the change), `msg` the reason",
    }
}


class RunList(BaseModel):
    items: list[RunOut]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null on the last page."
    )


class RunDetailOut(RunOut):
    sent_last_minute: int = Field(description="Messages sent in the last 60 seconds.")


def _digests(request: Request) -> Digests:
    found: Digests = request.app.state.services.digests
    return found


@router.get("/runs", response_model=RunList, responses=INVALID)
async def list_runs(
    request: Request,
    digest: str | None = Query(
        None, min_length=1, max_length=200, pattern=SLUG_PATTERN, description="A digest's slug."
    ),
    status: RunStatus | None = None,
    limit: int = Query(50, ge=1, le=RUN_PAGE_MAX),
    cursor: str | None = Query(
        None, min_length=1, max_length=200, description="`next_cursor` of a page."
    ),
) -> Any:
    """Runs newest first (by the time they were scheduled for), of one digest or all."""
    with sent_in("query", "digest", "status", "limit", "cursor"):
        page = await run_in_threadpool(
            _digests(request).run_page, digest, status.value if status else None, limit, cursor
        )
    return RunList(items=[run_out(r) for r in page.items], next_cursor=page.next_cursor)


@router.get("/runs/{run}", response_model=RunDetailOut, responses={**NOT_FOUND, **INVALID})
async def get_run(request: Request, run: RunId) -> Any:
    """The run with its ledger counted by status, and how many were sent in the last
    minute (for a page that follows it)."""
    progress = await run_in_threadpool(_digests(request).progress, run)
    return _detail(progress, progress.sent_last_minute)


def _detail(view: RunView, sent_last_minute: int) -> RunDetailOut:
    return RunDetailOut(**run_out(view).model_dump(), sent_last_minute=sent_last_minute)


@router.post("/runs/{run}/pause", response_model=RunOut, responses={**NOT_FOUND, **REFUSED})
async def pause_run(request: Request, run: RunId) -> Any:
    """Stop sending (a run that is composing or sending); rows in flight finish."""
    with sent_in("path", "run"):
        return run_out(await run_in_threadpool(_digests(request).pause_run, run))


@router.post("/runs/{run}/resume", response_model=RunOut, responses={**NOT_FOUND, **REFUSED})
async def resume_run(request: Request, run: RunId) -> Any:
    """Take a paused run up again where its ledger says it stopped (the workers send it)."""
    with sent_in("path", "run"):
        return run_out(await run_in_threadpool(_digests(request).resume_run, run))


@router.post("/runs/{run}/cancel", response_model=RunOut, responses={**NOT_FOUND, **REFUSED})
async def cancel_run(request: Request, run: RunId) -> Any:
    """Stop a run for good: rows not yet sent are skipped."""
    with sent_in("path", "run"):
        return run_out(await run_in_threadpool(_digests(request).cancel_run, run))
