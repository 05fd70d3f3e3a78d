"""Checking what an editor asks a digest to be (pure: the known tags, a way to tell whether
a template exists and `now` come in). Every fault names its field; nothing is stored."""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from newsletter.digests.compose import DigestInfo, Issue, Post, subject_of
from newsletter.digests.schedule import Schedule
from newsletter.errors import InvalidInputError
from newsletter.models import ArticleStatus, ArticleView, AuthorView

_SLUG = re.compile(r"[a-z0-9]+(-[a-z0-9]+)*")
_TEMPLATE = re.compile(r"[a-z0-9][a-z0-9_-]*")


@dataclass(frozen=True)
class DigestInput:
    """An editor's request; None leaves a field as it is (on edit) or at its default."""

    name: str | None = None
    description: str | None = None
    tags: tuple[str, ...] | None = None  # tag slugs; empty: every tag
    max_items: int | None = None
    cron: str | None = None
    timezone: str | None = None
    subject: str | None = None
    template: str | None = None
    skip_if_empty: bool | None = None
    paused: bool | None = None


@dataclass(frozen=True)
class Definition:
    """A complete, checked digest definition."""

    slug: str
    name: str
    description: str
    tags: tuple[str, ...]
    max_items: int
    cron: str
    timezone: str
    subject: str
    template: str
    skip_if_empty: bool
    paused: bool


def check_slug(slug: str) -> str:
    value = slug.strip()
    if not _SLUG.fullmatch(value) or len(value) > 200:
        raise InvalidInputError(
            "slug", f"{slug!r:.80} is not a slug (lowercase letters, digits, hyphens)", slug
        )
    return value


def merge(current: Definition, change: DigestInput) -> Definition:
    """`current` with the fields `change` gives."""
    given = {k: v for k, v in change.__dict__.items() if v is not None}
    return replace(current, **given)


def check(
    definition: Definition,
    known_tags: Collection[str],
    template_exists: Callable[[str], bool],
) -> Definition:
    """The definition with text trimmed, or InvalidInputError naming the first wrong field:
    an empty name, an unknown tag, max items out of range, a bad cron or time zone, an
    unknown template, or a subject that fails to render with sample data."""
    name = " ".join(definition.name.split())
    if not name or len(name) > 300:
        raise InvalidInputError("name", "must be 1 to 300 characters", definition.name)
    if len(definition.subject) > 500:
        raise InvalidInputError("subject", "must be at most 500 characters", None)
    if len(definition.description) > 2000:
        raise InvalidInputError("description", "must be at most 2,000 characters", None)
    for field_name in ("name", "description", "subject"):
        text = getattr(definition, field_name)
        # PostgreSQL refuses NUL in text, and no other control character belongs in a line
        if any(ord(ch) < 32 and ch not in "\t\n\r" for ch in text):
            raise InvalidInputError(field_name, "must not contain control characters", None)
    unknown = [t for t in definition.tags if t not in known_tags]
    if unknown:
        raise InvalidInputError("tags", f"no tag {unknown[0]!r}", unknown[0])
    if not 1 <= definition.max_items <= 100:
        raise InvalidInputError(
            "max_items", f"{definition.max_items} is not from 1 to 100", definition.max_items
        )
    schedule = Schedule.parse(definition.cron, definition.timezone)
    template = definition.template.strip()
    if not _TEMPLATE.fullmatch(template) or not template_exists(template):
        raise InvalidInputError(
            "template",
            f"{definition.template!r} is not a template: templates/email/<name>.html and "
            "<name>.txt must both exist",
            definition.template,
        )
    sample = Issue(
        DigestInfo(definition.slug, name, definition.description, definition.timezone),
        1,
        datetime(2026, 1, 1, 7, tzinfo=UTC),
        (Post(1, _SAMPLE),),
        "https://example.org/digests/sample/1",
    )
    subject_of(definition.subject, sample)  # raises InvalidInputError("subject")
    return replace(
        definition,
        name=name,
        description=definition.description.strip(),
        tags=tuple(sorted(set(definition.tags))),
        cron=schedule.cron,
        template=template,
    )


_SAMPLE = ArticleView(
    guid="sample",
    slug="sample",
    title="A sample post",
    summary="What a post's summary looks like.",
    body_html="<p>Sample</p>",
    url="https://example.org/articles/sample",
    image=None,
    author=AuthorView(slug="sample", name="A. Writer"),
    tags=(),
    status=ArticleStatus.published,
    published_at=datetime(2026, 1, 1, 6, tzinfo=UTC),
    updated_at=datetime(2026, 1, 1, 6, tzinfo=UTC),
)
