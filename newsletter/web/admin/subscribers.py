"""/admin pages: subscribers. Search by address, filter by status and digest, page through
them; suppress or remove one; import a CSV file (with a report of every bad row) and
export one. The same use cases as `newsletter subscribers ...` and /api/v1/subscribers."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlencode

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from newsletter import subscribers
from newsletter.errors import InvalidInputError
from newsletter.models import SubscriberStatus, utcnow
from newsletter.subscribers.directory import SubscriberPage
from newsletter.web.admin.common import checked_form, page, redirect, services

router = APIRouter()

FILTERS = ("q", "status", "digest", "cursor")
STATUSES = [s.value for s in SubscriberStatus]


def _filters(values: Any) -> dict[str, str]:
    """The list's filters among `values` (query parameters or a form), bounded."""
    return {key: str(values.get(key) or "").strip()[:254] for key in FILTERS}


def _list_url(filters: dict[str, str], **changes: str) -> str:
    wanted = {k: v for k, v in {**filters, **changes}.items() if v}
    return "/admin/subscribers" + ("?" + urlencode(wanted) if wanted else "")


@router.get("/subscribers")
async def subscribers_page(request: Request) -> Response:
    filters = _filters(request.query_params)
    engine = services(request).engine
    errors: dict[str, str] = {}
    try:
        found = await run_in_threadpool(
            subscribers.list_subscribers,
            engine,
            filters["q"] or None,
            filters["status"] or None,
            filters["digest"] or None,
            50,
            filters["cursor"] or None,
        )
    except InvalidInputError as exc:
        errors[exc.field or "q"] = exc.reason
        found = SubscriberPage([], None)
    counts = await run_in_threadpool(subscribers.subscriber_counts, engine)
    export = "/admin/subscribers/export.csv" + (
        "?" + urlencode({"status": filters["status"]}) if filters["status"] in STATUSES else ""
    )
    context = {
        "filters": filters,
        "errors": errors,
        "found": found,
        "counts": counts,
        "statuses": STATUSES,
        "next_url": _list_url(filters, cursor=found.next_cursor) if found.next_cursor else None,
        "first_url": _list_url(filters, cursor="") if filters["cursor"] else None,
        "export_url": export,
        "back": urlencode({k: v for k, v in filters.items() if v}),
    }
    return page(request, "admin/subscribers.html", context, status=400 if errors else 200)


def _back(form: Any) -> str:
    """The list as the editor left it (only its own filters: never a redirect elsewhere)."""
    return _list_url(_filters(dict(parse_qsl(str(form.get("back") or "")))))


@router.post("/subscribers/suppress")
async def suppress(request: Request) -> Response:
    form = await checked_form(request)
    reason = str(form.get("reason") or "unsubscribed")
    held = await run_in_threadpool(
        subscribers.suppress_address, services(request).engine, str(form.get("email") or ""), reason
    )
    return redirect(_back(form), f"{held.email} is suppressed ({held.reason}).")


@router.post("/subscribers/remove")
async def remove(request: Request) -> Response:
    form = await checked_form(request)
    email = str(form.get("email") or "")
    await run_in_threadpool(subscribers.remove, services(request).engine, email)
    return redirect(_back(form), f"{subscribers.normalize_email(email)} is removed.")


@router.get("/subscribers/import")
async def import_page(request: Request) -> Response:
    return page(request, "admin/subscribers_import.html", {"errors": {}})


@router.post("/subscribers/import")
async def import_file(request: Request) -> Response:
    async with request.form():  # the uploaded file is closed however this ends
        form = await checked_form(request)
        upload = form.get("file")
        data = await upload.read() if isinstance(upload, UploadFile) else b""
    if not data:
        errors = {"file": "choose a CSV file to import"}
        return page(request, "admin/subscribers_import.html", {"errors": errors}, status=400)
    built = services(request)
    try:
        report = await run_in_threadpool(
            subscribers.import_csv_bytes, built.engine, data, utcnow(), built.settings.site.tz
        )
    except InvalidInputError as exc:
        errors = {"file": exc.reason}
        return page(request, "admin/subscribers_import.html", {"errors": errors}, status=400)
    name = upload.filename if isinstance(upload, UploadFile) else None
    context = {"report": report, "filename": name or "the file"}
    return page(request, "admin/subscribers_report.html", context)


@router.get("/subscribers/export.csv")
async def export(request: Request) -> Response:
    status = request.query_params.get("status") or None
    if status is not None and status not in STATUSES:
        raise InvalidInputError("status", f"{status!r:.40} is not one of " + ", ".join(STATUSES))
    return StreamingResponse(
        subscribers.csv_chunks(services(request).engine, status),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="subscribers.csv"'},
    )
