"""/api/v1 routes for subscribers: list and search, one subscriber, add (active at once or
through a confirmation email), remove, suppress, CSV import and export, and the counts the
dashboard shows. The same use cases as `newsletter subscribers ...`."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Query
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from newsletter import subscribers
from newsletter.models import SubscriberStatus, utcnow
from newsletter.services import Services
from newsletter.subscribers.directory import PAGE_MAX
from newsletter.web.api.schemas import INVALID, NOT_FOUND, Problem, sent_in
from newsletter.web.limits import MAX_BODY_BYTES

router = APIRouter(tags=["subscribers"])

CSV_TYPES = ("text/csv", "application/csv")
Reason = Literal["unsubscribed", "bounced", "complained"]


class SubscriberOut(BaseModel):
    email: str = Field(description="The address in its normalised form.")
    name: str
    status: SubscriberStatus
    created_at: datetime
    confirmed_at: datetime | None
    digests: list[str] = Field(description="Slugs of the digests they receive.")
    tags: list[str] = Field(description="Tag slugs their digests are narrowed to (none: all).")
    suppressed: Reason | None = Field(
        description="Why the address must not be mailed, when it must not (null otherwise)."
    )


class SubscriberList(BaseModel):
    items: list[SubscriberOut]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null on the last page."
    )


class NewSubscriber(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: str = Field(max_length=320)
    name: str = Field(default="", max_length=300)
    digests: list[str] = Field(
        default_factory=list,
        max_length=50,
        description="Digest slugs; none: the default digest.",
    )
    tags: list[str] = Field(
        default_factory=list,
        max_length=500,
        description="Only posts with these tag slugs; none: every post of the digest.",
    )
    confirm: bool = Field(
        default=False,
        description="Send a confirmation email and keep the subscriber pending until they "
        "follow it (202), instead of adding them as active on your word (201).",
    )


class Invitation(BaseModel):
    email: str
    status: Literal["pending"] = "pending"
    detail: str


class SuppressRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Reason = "unsubscribed"


class SuppressionOut(BaseModel):
    email: str
    reason: Reason
    by_operator: bool = Field(description="Set by an editor: only an editor lifts it.")
    created_at: datetime
    subscriber: SubscriberOut | None = Field(
        description="The subscriber with the address, if anybody has it."
    )


class RowErrorOut(BaseModel):
    line: int = Field(description="Line number in the file (the header is line 1).")
    field: str | None = Field(description="The column at fault (null: the whole row).")
    reason: str


class ImportReport(BaseModel):
    created: int
    updated: int
    unchanged: int
    suppressed: int = Field(description="Rows skipped: the address must not be mailed.")
    failed: int
    errors: list[RowErrorOut]


class DigestCountOut(BaseModel):
    slug: str
    name: str
    active: int = Field(description="Active subscribers who receive this digest.")


class CountsOut(BaseModel):
    total: int
    by_status: dict[str, int] = Field(description="Every status, zero included.")
    by_digest: list[DigestCountOut]


def _services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found


@router.get("/subscribers", response_model=SubscriberList, responses=INVALID)
async def list_subscribers(
    request: Request,
    q: str | None = Query(None, max_length=254, description="Part of the address, any case."),
    status: SubscriberStatus | None = None,
    digest: str | None = Query(None, max_length=200, description="A digest's slug."),
    limit: int = Query(50, ge=1, le=PAGE_MAX),
    cursor: str | None = Query(None, max_length=100, description="`next_cursor` of a page."),
) -> Any:
    """Subscribers by the order they came, a page at a time, searched and filtered."""
    engine = _services(request).engine
    with sent_in("query", "q", "cursor", "digest", "status", "limit"):
        return await run_in_threadpool(
            subscribers.list_subscribers, engine, q, status, digest, limit, cursor
        )


@router.get("/subscribers/counts", response_model=CountsOut)
async def subscriber_counts(request: Request) -> Any:
    """How many subscribers have each status, and how many active ones each digest has."""
    counts = await run_in_threadpool(subscribers.subscriber_counts, _services(request).engine)
    return CountsOut(
        total=counts.total,
        by_status=counts.by_status,
        by_digest=[
            DigestCountOut(slug=d.slug, name=d.name, active=d.active) for d in counts.by_digest
        ],
    )


@router.get(
    "/subscribers/export",
    # the 200 is CSV (documented below); a refusal is JSON like everywhere else
    response_class=Response,
    responses={
        200: {
            "description": "Every subscriber (or those with `status`) as CSV with the columns "
            + ", ".join(subscribers.COLUMNS)
            + "; what the import reads.",
            "content": {"text/csv": {"schema": {"type": "string"}}},
        },
        **INVALID,
    },
)
async def export_subscribers(request: Request, status: SubscriberStatus | None = None) -> Response:
    """Download subscribers as CSV (streamed a thousand at a time)."""
    chunks = subscribers.csv_chunks(_services(request).engine, status)
    return StreamingResponse(
        chunks,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="subscribers.csv"'},
    )


@router.post(
    "/subscribers/import",
    response_model=ImportReport,
    responses={
        413: {"description": f"The file is larger than {MAX_BODY_BYTES} bytes"},
        **INVALID,
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": "UTF-8 CSV with a header row: "
            + ", ".join(subscribers.COLUMNS)
            + " (only email required; lists separated by ';').",
            "content": {"text/csv": {"schema": {"type": "string"}}},
        }
    },
)
async def import_subscribers(request: Request) -> Any:
    """Import subscribers from CSV, as `newsletter subscribers import` does. Good rows are
    stored, bad rows reported with their line; suppressed addresses are skipped."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind not in CSV_TYPES:
        msg = f"the body must be CSV sent as text/csv, not {kind[:60] or 'without a type'}"
        raise RequestValidationError(
            [{"type": "value_error", "loc": ("header", "content-type"), "msg": msg}]
        )
    data = await request.body()
    built = _services(request)
    report = await run_in_threadpool(
        subscribers.import_csv_bytes, built.engine, data, utcnow(), built.settings.site.tz
    )
    return ImportReport(
        created=report.created,
        updated=report.updated,
        unchanged=report.unchanged,
        suppressed=report.suppressed,
        failed=len(report.errors),
        errors=[RowErrorOut(line=e.line, field=e.field, reason=e.reason) for e in report.errors],
    )


@router.post(
    "/subscribers",
    status_code=201,
    response_model=SubscriberOut,
    responses={
        202: {"model": Invitation, "description": "Confirmation email queued (`confirm`)"},
        409: {"model": Problem, "description": "Somebody has the address already"},
        **INVALID,
    },
)
async def add_subscriber(request: Request, body: NewSubscriber) -> Any:
    """Add a subscriber, as `newsletter subscribers add [--confirm]` does. A suppressed
    address is refused (422 on `email`)."""
    built = _services(request)
    if body.confirm:
        address = await built.subscribers.invite(body.email, body.name, body.digests, body.tags)
        answer = Invitation(email=address, detail="a confirmation email is on its way")
        return JSONResponse(answer.model_dump(), status_code=202)
    return await run_in_threadpool(
        subscribers.add_new,
        built.engine,
        body.email,
        built.settings.site.tz,
        body.name,
        body.digests,
        body.tags,
    )


@router.post(
    "/subscribers/{email:path}/suppress",
    response_model=SuppressionOut,
    responses=INVALID,
)
async def suppress_subscriber(
    request: Request, email: str, body: SuppressRequest | None = None
) -> Any:
    """Never mail the address again (an editor's suppression: no sign-up or import undoes
    it). Works for an address nobody has subscribed with yet."""
    reason = body.reason if body else "unsubscribed"
    with sent_in("path", "email"):
        return await run_in_threadpool(
            subscribers.suppress_address, _services(request).engine, email, reason
        )


@router.delete(
    "/subscribers/{email:path}/suppression",
    status_code=204,
    response_class=Response,
    responses={**NOT_FOUND, **INVALID},
)
async def unsuppress_subscriber(request: Request, email: str) -> Response:
    """Lift any suppression of the address, as `newsletter subscribers unsuppress` does
    (404 when there is none). Its subscriber becomes unsubscribed: mail resumes only after
    a new sign-up and confirmation, or an add."""
    with sent_in("path", "email"):
        await run_in_threadpool(subscribers.unsuppress, _services(request).engine, email)
    return Response(status_code=204)


@router.get(
    "/subscribers/{email:path}",
    response_model=SubscriberOut,
    responses={**NOT_FOUND, **INVALID},
)
async def get_subscriber(request: Request, email: str) -> Any:
    with sent_in("path", "email"):
        return await run_in_threadpool(
            subscribers.subscriber_view, _services(request).engine, email
        )


@router.delete(
    "/subscribers/{email:path}",
    status_code=204,
    response_class=Response,
    responses={**NOT_FOUND, **INVALID},
)
async def remove_subscriber(request: Request, email: str) -> Response:
    """Forget the subscriber and their choices; a suppression of the address stays."""
    with sent_in("path", "email"):
        await run_in_threadpool(subscribers.remove, _services(request).engine, email)
    return Response(status_code=204)
