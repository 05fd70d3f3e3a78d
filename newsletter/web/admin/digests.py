"""/admin pages: digests (list, create, edit with a live preview of the next issue, test
send, send now behind a confirmation). Every action is a plain form; the preview script only
refreshes what the Preview button would show."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from newsletter import articles
from newsletter.digests import schedule
from newsletter.digests.definitions import DigestInput
from newsletter.digests.schedule import WEEKDAY_NAMES, in_words
from newsletter.digests.service import DigestView
from newsletter.errors import DeliveryError, DuplicateError, InvalidInputError, NotFoundError
from newsletter.models import DEFAULT_SUBJECT, utcnow
from newsletter.web.admin.common import checked_form, page, redirect, services

router = APIRouter()

# errors of the schedule helpers, shown beside the schedule as a whole
_SCHEDULE_FIELDS = {"daily", "weekly", "monthly", "schedule"}


@dataclass
class DigestForm:
    """What the editor typed, as typed: re-shown with the errors when it is refused."""

    slug: str = ""
    name: str = ""
    description: str = ""
    tags: list[str] = field(default_factory=list)
    max_items: str = "10"
    repeat: str = "daily"  # daily | weekly | monthly | cron
    at: str = "07:00"
    weekday: str = "mon"
    day: str = "1"
    cron: str = "0 7 * * *"
    timezone: str = ""
    subject: str = DEFAULT_SUBJECT
    template: str = "digest"
    skip_if_empty: bool = True

    @classmethod
    def of(cls, view: DigestView) -> DigestForm:
        found = cls(
            slug=view.slug,
            name=view.name,
            description=view.description,
            tags=list(view.tags),
            max_items=str(view.max_items),
            repeat="cron",
            cron=view.cron,
            timezone=view.timezone,
            subject=view.subject,
            template=view.template,
            skip_if_empty=view.skip_if_empty,
        )
        shape = schedule.shape_of(view.cron)
        # a monthly day outside 1 to 28, which the form does not offer, stays a cron expression
        if shape is not None and (shape.repeat != "monthly" or 1 <= int(shape.day) <= 28):
            found.repeat, found.at = shape.repeat, shape.at
            found.weekday = shape.weekday or found.weekday
            found.day = shape.day or found.day
        return found

    @classmethod
    def parse(cls, form: FormData) -> DigestForm:
        def text(name: str, default: str = "") -> str:
            return str(form.get(name) or default).strip()

        return cls(
            slug=text("slug"),
            name=text("name"),
            description=text("description"),
            tags=[str(t) for t in form.getlist("tags")],
            max_items=text("max_items"),
            repeat=text("repeat", "daily"),
            at=text("at"),
            weekday=text("weekday", "mon"),
            day=text("day"),
            cron=text("cron"),
            timezone=text("timezone"),
            subject=str(form.get("subject") or ""),
            template=text("template"),
            skip_if_empty=form.get("send_if_empty") is None,
        )

    def to_input(self) -> DigestInput:
        """The service's input; InvalidInputError for what cannot even be read."""
        if not self.max_items.isdigit():
            raise InvalidInputError("max_items", "must be a whole number from 1 to 100")
        if self.repeat == "daily":
            cron = schedule.daily(self.at)
        elif self.repeat == "weekly":
            cron = schedule.weekly(self.weekday, self.at)
        elif self.repeat == "monthly":
            if not self.day.isdigit():
                raise InvalidInputError("monthly", "the day of the month must be from 1 to 28")
            cron = schedule.monthly(int(self.day), self.at)
        elif self.repeat == "cron":
            cron = self.cron
        else:
            raise InvalidInputError("schedule", "choose daily, weekly, monthly or cron")
        return DigestInput(
            name=self.name,
            description=self.description,
            tags=tuple(self.tags),
            max_items=int(self.max_items),
            cron=cron,
            timezone=self.timezone,
            subject=self.subject,
            template=self.template,
            skip_if_empty=self.skip_if_empty,
        )


def _error_field(exc: InvalidInputError, form: DigestForm) -> str:
    name = exc.field or "form"
    if name in _SCHEDULE_FIELDS or (name == "cron" and form.repeat != "cron"):
        return "schedule"
    return name


async def _tags(request: Request) -> list[articles.TagCount]:
    return await run_in_threadpool(articles.tags_with_counts, services(request).engine, utcnow())


@router.get("/digests")
async def digest_list(request: Request) -> Response:
    views = await run_in_threadpool(services(request).digests.all)
    return page(request, "admin/digests.html", {"digests": views, "in_words": in_words})


async def _editor_page(
    request: Request,
    form: DigestForm,
    view: DigestView | None,
    errors: dict[str, str],
    status: int = 200,
    subscriber: str = "",
    test_to: str = "",
) -> Response:
    """The create form (view None) or a digest's page: its form, preview, test and send."""
    context: dict[str, Any] = {
        "form": form,
        "view": view,
        "errors": errors,
        "tags": await _tags(request),
        "weekdays": WEEKDAY_NAMES,
        "in_words": in_words,
        "subscriber": subscriber,
        "test_to": test_to,
    }
    if view is not None:
        context["preview"] = await _preview(request, view.slug, subscriber, errors)
        context["runs"] = await run_in_threadpool(services(request).digests.runs, view.slug, 5)
    template = "admin/digest_edit.html" if view else "admin/digest_new.html"
    return page(request, template, context, status)


async def _preview(
    request: Request, slug: str, subscriber: str, errors: dict[str, str]
) -> dict[str, str]:
    """The next issue as HTML and as text, for the whole list or one subscriber; a
    subscriber who cannot be previewed is an error beside the subscriber field."""
    digests = services(request).digests
    who = subscriber or None
    try:
        html = await run_in_threadpool(digests.preview, slug, "html", who)
        text = await run_in_threadpool(digests.preview, slug, "text", who)
    except (NotFoundError, InvalidInputError) as exc:
        if who is None:
            raise
        errors["subscriber"] = (
            f"no subscriber {subscriber}" if isinstance(exc, NotFoundError) else exc.reason
        )
        html = await run_in_threadpool(digests.preview, slug, "html", None)
        text = await run_in_threadpool(digests.preview, slug, "text", None)
    return {"html": html, "text": text}


@router.get("/digests/new")
async def new_digest(request: Request) -> Response:
    blank = DigestForm(timezone=services(request).settings.site.timezone)
    return await _editor_page(request, blank, None, {})


@router.post("/digests/new")
async def create_digest(request: Request) -> Response:
    form = DigestForm.parse(await checked_form(request))
    try:
        data = form.to_input()
        view = await run_in_threadpool(services(request).digests.create, form.slug, data)
    except InvalidInputError as exc:
        errors = {_error_field(exc, form): exc.reason}
        return await _editor_page(request, form, None, errors, status=422)
    except DuplicateError:
        errors = {"slug": f"{form.slug} is taken by another digest"}
        return await _editor_page(request, form, None, errors, status=422)
    return redirect(f"/admin/digests/{view.slug}/edit", f"Digest {view.name} created.")


@router.get("/digests/{slug}")
async def digest_page(slug: str) -> Response:
    return redirect(f"/admin/digests/{slug}/edit")


@router.get("/digests/{slug}/edit")
async def edit_digest_page(request: Request, slug: str, subscriber: str = "") -> Response:
    view = await run_in_threadpool(services(request).digests.get, slug)
    return await _editor_page(request, DigestForm.of(view), view, {}, subscriber=subscriber.strip())


@router.post("/digests/{slug}/edit")
async def edit_digest(request: Request, slug: str) -> Response:
    form = DigestForm.parse(await checked_form(request))
    digests = services(request).digests
    try:
        data = form.to_input()
        view = await run_in_threadpool(digests.edit, slug, data)
    except InvalidInputError as exc:
        current = await run_in_threadpool(digests.get, slug)
        form.slug = slug
        errors = {_error_field(exc, form): exc.reason}
        return await _editor_page(request, form, current, errors, status=422)
    return redirect(f"/admin/digests/{slug}/edit", f"Saved {view.name}.")


@router.get("/digests/{slug}/preview")
async def preview(
    request: Request, slug: str, format: str = "html", subscriber: str = ""
) -> Response:
    """The preview alone (what the page's script loads): HTML under a sandbox policy, so
    nothing in an issue runs with the admin's origin; text as plain text."""
    body = await run_in_threadpool(
        services(request).digests.preview, slug, format, subscriber.strip() or None
    )
    if format == "text":
        return Response(body, media_type="text/plain; charset=utf-8")
    headers = {"Content-Security-Policy": "sandbox", "Cache-Control": "no-store"}
    return Response(body, media_type="text/html; charset=utf-8", headers=headers)


@router.post("/digests/{slug}/preview-draft")
async def preview_draft(request: Request, slug: str) -> Response:
    """The preview of the settings as they stand in the form, not saved (what the page's
    script posts when a field changes): JSON with both bodies, or the field in error."""
    raw = await checked_form(request)
    form = DigestForm.parse(raw)
    who = str(raw.get("subscriber") or "").strip() or None
    digests = services(request).digests
    try:
        data = form.to_input()
        html = await run_in_threadpool(digests.preview_issue, slug, "html", who, data)
        text = await run_in_threadpool(digests.preview_issue, slug, "text", who, data)
    except InvalidInputError as exc:
        field = "subscriber" if exc.field == "subscriber" else _error_field(exc, form)
        return JSONResponse({"field": field, "error": exc.reason}, status_code=422)
    except NotFoundError as exc:
        return JSONResponse({"field": "subscriber", "error": str(exc)}, status_code=422)
    answer = {"subject": html.subject, "html": html.body, "text": text.body}
    return JSONResponse(answer, headers={"Cache-Control": "no-store"})


@router.post("/digests/{slug}/pause")
async def pause_digest(request: Request, slug: str) -> Response:
    await checked_form(request)
    view = await run_in_threadpool(services(request).digests.pause, slug)
    return redirect("/admin/digests", f"{view.name} is paused: no issue goes out on schedule.")


@router.post("/digests/{slug}/resume")
async def resume_digest(request: Request, slug: str) -> Response:
    await checked_form(request)
    view = await run_in_threadpool(services(request).digests.resume, slug)
    return redirect("/admin/digests", f"{view.name} is scheduled again.")


@router.post("/digests/{slug}/test")
async def send_test(request: Request, slug: str) -> Response:
    form = await checked_form(request)
    address = str(form.get("to") or "").strip()
    digests = services(request).digests
    try:
        if not address:
            raise InvalidInputError("to", "give the address to send the test to")
        await digests.send_test(slug, address)
    except (InvalidInputError, DeliveryError) as exc:
        view = await run_in_threadpool(digests.get, slug)
        reason = exc.reason if isinstance(exc, InvalidInputError) else f"not sent: {exc}"
        errors = {"to": reason}
        form_ = DigestForm.of(view)
        return await _editor_page(request, form_, view, errors, 422, test_to=address)
    return redirect(f"/admin/digests/{slug}/edit", f"A test of {slug} went to {address}.")


@router.get("/digests/{slug}/send")
async def confirm_send(request: Request, slug: str) -> Response:
    digests = services(request).digests
    view = await run_in_threadpool(digests.get, slug)
    audience = await run_in_threadpool(digests.audience_size, slug)
    return page(request, "admin/digest_send.html", {"view": view, "audience": audience})


@router.post("/digests/{slug}/send")
async def send_now(request: Request, slug: str) -> Response:
    await checked_form(request)
    run = await run_in_threadpool(services(request).digests.send_now, slug)
    if run.status == "skipped":
        return redirect(f"/admin/runs/{run.id}", f"Run {run.id} was skipped: {run.reason}.")
    return redirect(f"/admin/runs/{run.id}", f"Run {run.id} of {slug} is under way.")
