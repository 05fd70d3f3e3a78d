"""/admin pages: digest runs (recent runs, one run's live progress, pause, resume, cancel).
The run page's script polls progress.json; without it the page reloads itself."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from newsletter.digests import RunProgress
from newsletter.errors import InvalidInputError
from newsletter.web.admin.common import checked_form, page, redirect, services

router = APIRouter()

# what an editor reads, in this order; "pending" is what a sender has still to take up
SHOWN = ("sent", "deferred", "failed", "skipped", "suppressed", "pending")


def numbers(counts: dict[str, int]) -> dict[str, int]:
    """Ledger counts as the pages show them: queued and in-flight rows are "pending"."""
    shown = {name: counts.get(name, 0) for name in SHOWN}
    shown["pending"] = counts.get("queued", 0) + counts.get("sending", 0)
    return shown


def done(counts: dict[str, int]) -> int:
    """Rows in a final state (deferred rows come back, so they are not done)."""
    return sum(counts.get(name, 0) for name in ("sent", "failed", "skipped", "suppressed"))


def status_text(status: str, finished: bool) -> str:
    return f"finished ({status})" if finished else status


def progress_json(progress: RunProgress) -> dict[str, Any]:
    return {
        "id": progress.id,
        "digest": progress.digest,
        "status": progress.status,
        "status_text": status_text(progress.status, progress.finished),
        "reason": progress.reason,
        "finished": progress.finished,
        "recipients": progress.recipients,
        "done": done(progress.counts),
        "counts": numbers(progress.counts),
        "sent_last_minute": progress.sent_last_minute,
    }


@router.get("/runs")
async def run_list(request: Request) -> Response:
    views = await run_in_threadpool(services(request).digests.runs, None, 50)
    context = {"runs": views, "numbers": numbers, "done": done}
    return page(request, "admin/runs.html", context)


async def _run_page(
    request: Request, run_id: int, error: str = "", status: int = 200, template: str = ""
) -> Response:
    # the run with its pace: one read serves the page and the numbers its script follows
    progress = await run_in_threadpool(services(request).digests.progress, run_id)
    context = {"run": progress, "progress": progress_json(progress), "error": error}
    return page(request, template or "admin/run.html", context, status)


@router.get("/runs/{run_id}")
async def run_page(request: Request, run_id: int) -> Response:
    return await _run_page(request, run_id)


@router.get("/runs/{run_id}/progress.json")
async def run_progress(request: Request, run_id: int) -> Response:
    progress = await run_in_threadpool(services(request).digests.progress, run_id)
    return JSONResponse(progress_json(progress), headers={"Cache-Control": "no-store"})


async def _steer(
    request: Request, run_id: int, action: Callable[[int], object], refused: str, done: str
) -> Response:
    """A pause, resume or cancel from a run's form: back to the run with `done`, or the run
    page again with `refused` and the reason when its state does not allow it."""
    await checked_form(request)
    try:
        await run_in_threadpool(action, run_id)
    except InvalidInputError as exc:
        return await _run_page(request, run_id, f"{refused}: {exc.reason}.", 409)
    return redirect(f"/admin/runs/{run_id}", done)


@router.post("/runs/{run_id}/pause")
async def pause_run(request: Request, run_id: int) -> Response:
    pause = services(request).digests.pause_run
    return await _steer(request, run_id, pause, "Not paused", f"Run {run_id} is paused.")


@router.post("/runs/{run_id}/resume")
async def resume_run(request: Request, run_id: int) -> Response:
    done = f"Run {run_id} goes on where it stopped."
    return await _steer(request, run_id, services(request).digests.resume_run, "Not resumed", done)


@router.get("/runs/{run_id}/cancel")
async def confirm_cancel(request: Request, run_id: int) -> Response:
    return await _run_page(request, run_id, template="admin/run_cancel.html")


@router.post("/runs/{run_id}/cancel")
async def cancel_run(request: Request, run_id: int) -> Response:
    done = f"Run {run_id} is cancelled: nobody else gets it."
    return await _steer(
        request, run_id, services(request).digests.cancel_run, "Not cancelled", done
    )
