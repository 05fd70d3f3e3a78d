"""/api/v1 routes for digests: list, create, show, edit, delete, pause, resume, preview the
next issue, send a test, send now. The same use cases as `newsletter digests ...`; the
checks of a definition are the CLI's (digests.definitions)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Path, Query
from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from newsletter.digests.definitions import DigestInput
from newsletter.digests.service import Digests, DigestView, RunView
from newsletter.errors import DeliveryError, InvalidInputError, PermanentFailure
from newsletter.models import RunStatus
from newsletter.web.api.schemas import INVALID, Problem, sent_in

router = APIRouter(tags=["digests"])

SLUG_PATTERN = r"^[a-z0-9]+(-[a-z0-9]+)*$"
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": Problem, "description": "No such digest (or subscriber)"}
}


def _printable(value: str) -> str:
    # the databases refuse NUL in text, and no field of a digest means a control character
    if any(ord(c) < 32 and c not in "\t\n\r" for c in value):
        raise ValueError("must not contain control characters")
    return value


Text = Annotated[str, AfterValidator(_printable)]
Slug = Annotated[str, Field(min_length=1, max_length=200, pattern=SLUG_PATTERN)]
SlugPath = Annotated[
    str,
    Path(
        min_length=1,
        max_length=200,
        pattern=SLUG_PATTERN,
        description="The digest's slug (lowercase letters, digits, hyphens).",
    ),
]


class DigestFields(BaseModel):
    """What an editor may set; a field left out (or null) keeps its value (on create: its
    default)."""

    model_config = ConfigDict(extra="forbid")

    name: Text | None = Field(None, min_length=1, max_length=300, description="As readers see it.")
    description: Text | None = Field(None, max_length=2000)
    tags: list[Slug] | None = Field(
        None,
        max_length=200,
        description="Slugs of the tags the digest draws posts from; empty: every tag.",
    )
    max_items: int | None = Field(None, ge=1, le=100, description="Most posts in an issue.")
    cron: Text | None = Field(
        None,
        min_length=1,
        max_length=200,
        description="Five-field cron expression 'minute hour day month weekday', read on the "
        "wall clock of `timezone` (default '0 7 * * *').",
        examples=["0 7 * * *", "30 6 * * mon"],
    )
    timezone: Text | None = Field(
        None,
        min_length=1,
        max_length=64,
        description="IANA time zone of the schedule (default: the site's).",
        examples=["Asia/Jakarta"],
    )
    subject: Text | None = Field(
        None,
        min_length=1,
        max_length=500,
        description="Subject template (Jinja2), e.g. '{{ digest.name }}: {{ issue.date }}'.",
    )
    template: Text | None = Field(
        None, min_length=1, max_length=100, description="templates/email/<template>.html|txt."
    )
    skip_if_empty: bool | None = Field(None, description="Skip an issue with no posts.")
    paused: bool | None = Field(None, description="Paused digests are not scheduled.")

    def as_input(self) -> DigestInput:
        return DigestInput(
            name=self.name,
            description=self.description,
            tags=None if self.tags is None else tuple(self.tags),
            max_items=self.max_items,
            cron=self.cron,
            timezone=self.timezone,
            subject=self.subject,
            template=self.template,
            skip_if_empty=self.skip_if_empty,
            paused=self.paused,
        )


class NewDigest(DigestFields):
    slug: Slug = Field(description="Lowercase letters, digits and hyphens; never changes.")
    name: Text = Field(min_length=1, max_length=300, description="As readers see it.")


class DigestOut(BaseModel):
    slug: str
    name: str
    description: str
    tags: list[str] = Field(description="Tag slugs it draws from; empty: every tag.")
    max_items: int
    cron: str
    timezone: str
    subject: str
    template: str
    skip_if_empty: bool
    paused: bool
    next_run: datetime | None = Field(description="Next firing in UTC; null when paused.")
    next_run_local: datetime | None = Field(
        description="The same moment on the digest's own clock (`timezone`)."
    )


class DigestDetailOut(DigestOut):
    audience_size: int = Field(
        description="Readers a send now would reach: active, unsuppressed subscribers who "
        "would get at least one post of the next issue."
    )


class PreviewOut(BaseModel):
    subject: str
    format: Literal["html", "text"]
    body: str


class TestRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to: Text = Field(min_length=1, max_length=320, description="Any address; not stored.")


class TestSent(BaseModel):
    to: str
    message_id: str


class RunOut(BaseModel):
    id: int
    digest: str = Field(description="The digest's slug.")
    kind: Literal["scheduled", "manual"]
    status: RunStatus
    reason: str = Field(description="Why it is paused, skipped, missed or cancelled.")
    scheduled_for: datetime
    window_start: datetime | None
    window_end: datetime | None
    subject: str
    posts: int
    counts: dict[str, int] = Field(description="Ledger rows by delivery status.")
    recipients: int = Field(description="Ledger rows in all.")
    finished: bool = Field(description="The run has ended: nothing more will be sent.")
    started_at: datetime | None = Field(description="When the run was made.")
    finished_at: datetime | None


def run_out(run: RunView) -> RunOut:
    return RunOut(
        id=run.id,
        digest=run.digest,
        kind=run.kind,
        status=RunStatus(run.status),
        reason=run.reason,
        scheduled_for=run.scheduled_for,
        window_start=run.window_start,
        window_end=run.window_end,
        subject=run.subject,
        posts=run.posts,
        counts=run.counts,
        recipients=run.recipients,
        finished=run.finished,
        started_at=run.created_at,
        finished_at=run.finished_at,
    )


def _out(view: DigestView) -> dict[str, Any]:
    local = view.next_run.astimezone(ZoneInfo(view.timezone)) if view.next_run else None
    return {
        "slug": view.slug,
        "name": view.name,
        "description": view.description,
        "tags": list(view.tags),
        "max_items": view.max_items,
        "cron": view.cron,
        "timezone": view.timezone,
        "subject": view.subject,
        "template": view.template,
        "skip_if_empty": view.skip_if_empty,
        "paused": view.paused,
        "next_run": view.next_run,
        "next_run_local": local,
    }


def _digests(request: Request) -> Digests:
    found: Digests = request.app.state.services.digests
    return found


@router.get("/digests", response_model=list[DigestOut])
async def list_digests(request: Request) -> Any:
    """Every digest with its schedule and next firing."""
    views = await run_in_threadpool(_digests(request).all)
    return [_out(v) for v in views]


@router.post(
    "/digests",
    status_code=201,
    response_model=DigestOut,
    responses={
        201: {"description": "Created; `Location` is its URL"},
        409: {"model": Problem, "description": "A digest with the slug exists already"},
        **INVALID,
    },
)
async def create_digest(request: Request, body: NewDigest) -> Any:
    """Define a digest, as `newsletter digests create` does (daily at 07:00 in the site's
    zone unless `cron` and `timezone` say otherwise)."""
    view = await run_in_threadpool(_digests(request).create, body.slug, body.as_input())
    return JSONResponse(
        DigestOut(**_out(view)).model_dump(mode="json"),
        status_code=201,
        headers={"Location": f"/api/v1/digests/{body.slug}"},
    )


@router.get("/digests/{slug}", response_model=DigestDetailOut, responses={**NOT_FOUND, **INVALID})
async def get_digest(request: Request, slug: SlugPath) -> Any:
    """The definition, its next firing (UTC and its own zone) and its audience now."""
    detail = await run_in_threadpool(_digests(request).detail, slug)
    return DigestDetailOut(**_out(detail), audience_size=detail.audience_size)


@router.patch("/digests/{slug}", response_model=DigestOut, responses={**NOT_FOUND, **INVALID})
async def edit_digest(request: Request, slug: SlugPath, body: DigestFields) -> Any:
    """Change the fields given; the others keep their value. A new schedule starts now
    (firings it would have had before are not sent)."""
    return _out(await run_in_threadpool(_digests(request).edit, slug, body.as_input()))


@router.delete(
    "/digests/{slug}",
    status_code=204,
    response_class=Response,
    responses={**NOT_FOUND, **INVALID},
)
async def delete_digest(request: Request, slug: SlugPath) -> Response:
    """Delete the digest with its runs, their ledgers and its readers' subscriptions to it."""
    await run_in_threadpool(_digests(request).delete, slug)
    return Response(status_code=204)


@router.post("/digests/{slug}/pause", response_model=DigestOut, responses={**NOT_FOUND, **INVALID})
async def pause_digest(request: Request, slug: SlugPath) -> Any:
    """Stop scheduling the digest (runs under way go on: pause them under /runs)."""
    return _out(await run_in_threadpool(_digests(request).pause, slug))


@router.post("/digests/{slug}/resume", response_model=DigestOut, responses={**NOT_FOUND, **INVALID})
async def resume_digest(request: Request, slug: SlugPath) -> Any:
    """Schedule the digest again from now on (firings while it was paused are not sent)."""
    return _out(await run_in_threadpool(_digests(request).resume, slug))


@router.get(
    "/digests/{slug}/preview", response_model=PreviewOut, responses={**NOT_FOUND, **INVALID}
)
async def preview_digest(
    request: Request,
    slug: SlugPath,
    format: Literal["html", "text"] = Query("html", description="html or text."),
    subscriber: str | None = Query(
        None,
        min_length=1,
        max_length=320,
        description="A subscriber's address: their narrowed view, greeting and links "
        "(404 if nobody has it, 422 if they do not receive the digest).",
    ),
) -> Any:
    """The next issue as it would go out now, rendered from real articles."""
    with sent_in("query", "subscriber", "format"):
        issue = await run_in_threadpool(_digests(request).preview_issue, slug, format, subscriber)
    return PreviewOut(subject=issue.subject, format=format, body=issue.body)


@router.post(
    "/digests/{slug}/test",
    status_code=202,
    response_model=TestSent,
    responses={
        **NOT_FOUND,
        **INVALID,
        502: {"model": Problem, "description": "The mail server did not take it (try again)"},
    },
)
async def test_digest(request: Request, slug: SlugPath, body: TestRequest) -> Any:
    """Send the next issue, as it would go out now, to one address; its subject says it
    is a test. Accepted when the mail server took it."""
    try:
        message_id = await _digests(request).send_test(slug, body.to)
    except PermanentFailure as exc:
        raise InvalidInputError("to", f"the mail server refused it: {exc.reason:.200}") from None
    except DeliveryError as exc:
        detail = f"the mail server did not take the test: {exc.code or ''} {exc.reason:.200}"
        return JSONResponse({"detail": detail}, status_code=502)
    return TestSent(to=body.to.strip(), message_id=message_id)


@router.post(
    "/digests/{slug}/send",
    status_code=202,
    response_model=RunOut,
    responses={202: {"description": "The run; `Location` is its URL"}, **NOT_FOUND, **INVALID},
)
async def send_digest(request: Request, slug: SlugPath) -> Any:
    """Send an issue now, outside the schedule: the run and its ledger are made here and
    the workers send it (`newsletter worker`, or the sender in `newsletter serve`). The
    run's status is `skipped` when there is nothing new and the digest skips empty issues."""
    run = await run_in_threadpool(_digests(request).send_now, slug)
    return JSONResponse(
        run_out(run).model_dump(mode="json"),
        status_code=202,
        headers={"Location": f"/api/v1/runs/{run.id}"},
    )
