"""Composing an issue (pure: the digest, its posts, `now` and the templates come in).

A run's posts are narrowed per subscriber to the tags they chose; subscribers who get the
same posts form a segment. Each segment's bodies are rendered and their CSS inlined once,
with markers where the per-recipient parts go (greeting, address, unsubscribe and
preferences links); `personalise` fills them in for each recipient.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import Environment, StrictUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment

from newsletter.errors import InvalidInputError
from newsletter.models import ArticleView

# Markers for the parts filled in per recipient. Plain ASCII that neither Jinja's escaping,
# the CSS inliner nor quoted-printable changes, and that no article can contain by chance.
GREETING = "@@nl-greeting@@"
EMAIL = "@@nl-email@@"
UNSUBSCRIBE = "@@nl-unsubscribe@@"
PREFERENCES = "@@nl-preferences@@"
MARKERS = (GREETING, EMAIL, UNSUBSCRIBE, PREFERENCES)

_subjects = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False)


@dataclass(frozen=True)
class DigestInfo:
    """What templates may say about the digest."""

    slug: str
    name: str
    description: str
    timezone: str


@dataclass(frozen=True)
class Post:
    id: int
    article: ArticleView


@dataclass(frozen=True)
class Issue:
    """One issue: its digest, the run it belongs to and its posts (whole, un-narrowed)."""

    digest: DigestInfo
    run_id: int | None  # None for a preview of the next issue
    date: datetime  # the moment the issue stands for (its scheduled time)
    posts: tuple[Post, ...]
    view_url: str  # the issue's page on the site ("view in browser")


def narrow(posts: Sequence[Post], chosen: frozenset[str]) -> tuple[Post, ...]:
    """The posts for a subscriber who chose the tags `chosen` (empty: every post)."""
    if not chosen:
        return tuple(posts)
    return tuple(p for p in posts if chosen & {t.slug for t in p.article.tags})


def segment_key(posts: Sequence[Post]) -> str:
    """The segment of subscribers who get exactly these posts."""
    return ",".join(str(p.id) for p in posts)


def subject_of(template: str, issue: Issue) -> str:
    """The issue's subject from the digest's subject template (one line, plain text);
    InvalidInputError("subject") when it cannot be rendered."""
    try:
        text = _subjects.from_string(template).render(_subject_context(issue))
    except TemplateError as exc:
        raise InvalidInputError(
            "subject", f"{template!r} does not render: {exc}", template
        ) from None
    return " ".join(text.split())[:900]


def _subject_context(issue: Issue) -> dict[str, Any]:
    local = issue.date.astimezone(ZoneInfo(issue.digest.timezone))
    return {
        "digest": issue.digest,
        "issue": {
            "date": f"{local:%-d %B %Y}",
            "number": issue.run_id or 0,
            "posts": len(issue.posts),
            "first": issue.posts[0].article.title if issue.posts else "",
        },
    }


@dataclass
class Bodies:
    """A segment's bodies with markers, ready for `personalise`."""

    subject: str
    text: str
    html: str  # CSS inlined


@dataclass
class Composer:
    """Renders segments of issues. `renders` counts bodies rendered (a segment's bodies are
    rendered once however many recipients it has)."""

    templates: Environment
    template: str
    subject: str
    base_url: str
    site_title: str
    postal_address: str
    inline: Callable[[str], str]
    renders: int = 0
    _cache: dict[tuple[int | None, str], Bodies] = field(default_factory=dict)

    def bodies(self, issue: Issue, posts: Sequence[Post]) -> Bodies:
        """The bodies of `issue` narrowed to `posts`, rendered once per segment."""
        key = (issue.run_id, segment_key(posts))
        found = self._cache.get(key)
        if found is None:
            found = self._render(issue, posts)
            self._cache[key] = found
        return found

    def _render(self, issue: Issue, posts: Sequence[Post]) -> Bodies:
        self.renders += 1
        zone = ZoneInfo(issue.digest.timezone)
        local = issue.date.astimezone(zone)
        titles = [p.article.title for p in posts]
        context = {
            "digest": issue.digest,
            "issue": {
                "date": f"{local:%-d %B %Y}",
                "url": issue.view_url,
                "number": issue.run_id,
            },
            "posts": [_post(p.article, self.base_url, zone) for p in posts],
            "preheader": _preheader(titles, issue.digest.description),
            "greeting": GREETING,
            "email": EMAIL,
            "unsubscribe_url": UNSUBSCRIBE,
            "preferences_url": PREFERENCES,
            "postal_address": self.postal_address,
            "site_title": self.site_title,
            "base_url": self.base_url,
        }
        text = self.templates.get_template(f"email/{self.template}.txt").render(context)
        markup = self.templates.get_template(f"email/{self.template}.html").render(context)
        return Bodies(subject_of(self.subject, issue), text, self.inline(markup))


def _preheader(titles: list[str], fallback: str, most: int = 140) -> str:
    """The inbox preview line: the posts' titles, cut at a word, else the description."""
    text = " · ".join(titles) or fallback
    if len(text) <= most:
        return text
    return text[:most].rsplit(" ", 1)[0].rstrip(" ·") + "…"


def _post(article: ArticleView, base_url: str, zone: ZoneInfo) -> dict[str, Any]:
    published = article.published_at
    return {
        "title": article.title,
        "summary": article.summary,
        "url": article.link(base_url),
        "image": article.image,
        "author": article.author.name if article.author else "",
        "date": f"{published.astimezone(zone):%-d %B %Y}" if published else "",
        "tags": [t.name for t in article.tags],
    }


def greeting(name: str) -> str:
    return f"Hello {name}," if name else "Hello,"


def personalise(
    bodies: Bodies, name: str, email: str, unsubscribe_url: str, preferences_url: str
) -> tuple[str, str]:
    """(text, html) for one recipient: the markers replaced by their parts (previews and
    tests; a run fills the same parts into prebuilt bytes, `mail.prepared`)."""
    greeting_line = greeting(name)
    text = (
        bodies.text.replace(GREETING, greeting_line)
        .replace(EMAIL, email)
        .replace(UNSUBSCRIBE, unsubscribe_url)
        .replace(PREFERENCES, preferences_url)
    )
    markup = (
        bodies.html.replace(GREETING, html.escape(greeting_line))
        .replace(EMAIL, html.escape(email))
        .replace(UNSUBSCRIBE, html.escape(unsubscribe_url))
        .replace(PREFERENCES, html.escape(preferences_url))
    )
    return text, markup
