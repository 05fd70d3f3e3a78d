"""One imported article record -> a validated, normalised `ArticleInput` (pure).

`validate` checks every field and raises RecordError naming the record, the field and the
reason; nothing here reads files, the network or the database.
"""

from __future__ import annotations

import hashlib
import json
import re
import reprlib
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, tzinfo
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit

from markdown_it import MarkdownIt

from newsletter.config import Settings
from newsletter.dates import parse_datetime
from newsletter.errors import InvalidInputError, RecordError
from newsletter.models import ArticleStatus
from newsletter.text import (
    has_forbidden_chars,
    iri_to_uri,
    plain_text,
    sanitize_html,
    slugify,
    xml_safe,
)

FIELDS = frozenset(
    [
        "guid",
        "slug",
        "title",
        "summary",
        "body",
        "body_markdown",
        "author",
        "tags",
        "published_at",
        "updated_at",
        "url",
        "image",
        "status",
    ]
)
AUTHOR_FIELDS = frozenset({"name", "slug", "bio", "url"})
_SLUG = re.compile(r"[^\W_A-Z]+(-[^\W_A-Z]+)*")
_HOST = re.compile(r"[a-z0-9_~.-]+|[0-9a-f:.]+")  # urlsplit lowercases it and drops IPv6 brackets
_markdown = MarkdownIt("commonmark", {"html": True}).enable("table").enable("strikethrough")


@dataclass(frozen=True)
class AuthorInput:
    slug: str
    name: str
    bio: str | None = None
    url: str | None = None


@dataclass(frozen=True)
class ArticleInput:
    """One article as imported: text fields clean, dates aware, URLs absolute."""

    guid: str | None
    slug: str
    slug_given: bool
    title: str
    summary: str | None
    body_html: str
    url: str | None
    image: str | None
    author: AuthorInput | None
    tags: tuple[str, ...]
    published_at: datetime | None
    updated_at: datetime | None
    status: ArticleStatus
    fingerprint: str = field(default="", compare=False)
    where: str = field(default="", compare=False)  # file and line or record number


@dataclass(frozen=True)
class ImportContext:
    base_url: str
    timezone: tzinfo  # what a date without an offset means (newsletter.dates)
    max_body_bytes: int

    @classmethod
    def from_settings(cls, settings: Settings) -> ImportContext:
        return cls(settings.base_url, settings.site.tz, settings.articles.max_body_bytes)


Parsed = ArticleInput | RecordError


# ----------------------------------------------------------------------------- validation

_REPR = reprlib.Repr()
_REPR.maxlevel = 2
_REPR.maxdict = _REPR.maxlist = _REPR.maxtuple = _REPR.maxset = 4
_REPR.maxstring = _REPR.maxother = _REPR.maxlong = 60


def bounded_repr(value: object, most: int = 60) -> str:
    """`value` for an error message, at most about `most` characters, whatever its size:
    cut BEFORE it is formatted (`f"{value!r:.60}"` formats a huge nested value in full first,
    which YAML aliases make cost gigabytes)."""
    if isinstance(value, str):
        return repr(value[:most]) + ("…" if len(value) > most else "")
    try:
        shown = _REPR.repr(value)
    except (ValueError, RecursionError):  # an int too long to print, a value nested too deeply
        shown = f"<{type(value).__name__}>"
    return shown[:most] + ("…" if len(shown) > most else "")


def _text(raw: Mapping[str, Any], name: str, where: str) -> str | None:
    value = raw.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise RecordError(
            where, name, f"expected text, got {type(value).__name__} {bounded_repr(value)}"
        )
    return value


def _datetime(raw: Mapping[str, Any], name: str, where: str, tz: tzinfo) -> datetime | None:
    try:
        return parse_datetime(raw.get(name), name, tz)
    except InvalidInputError as exc:
        raise RecordError(where, name, exc.reason) from None


def _absolute_url(raw: Mapping[str, Any], name: str, where: str, base: str) -> str | None:
    value = _text(raw, name, where)
    if value is None or not value.strip():
        return None
    # As a browser does: tabs and line breaks inside are dropped, spaces, non-ASCII and the
    # other characters browsers encode are percent-encoded; only what cannot be a URL (no
    # http(s) scheme or host, control characters) is refused.
    value = re.sub(r"[\t\n\r]", "", value.strip())
    shown = bounded_repr(value, 80)
    if has_forbidden_chars(value):
        raise RecordError(where, name, f"{shown} contains control characters")
    try:
        given = urlsplit(value)
        if given.scheme and value[len(given.scheme) + 1 :].startswith("//") and not given.netloc:
            raise RecordError(where, name, f"{shown} is not an http(s) URL")  # "http://"
        absolute = iri_to_uri(urljoin(base + "/", value))
        parts = urlsplit(absolute)
        _ = parts.port  # raises ValueError for a port that is not a number
    except (UnicodeError, ValueError):  # also "http://[": an unclosed IPv6 address
        raise RecordError(where, name, f"{shown} has an invalid host name or port") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RecordError(where, name, f"{shown} is not an http(s) URL")
    if not _HOST.fullmatch(parts.hostname):
        raise RecordError(where, name, f"{shown} has an invalid host name or port")
    _limit(where, name, absolute, 2000)
    return absolute


def _limit(where: str, name: str, value: str, most: int) -> None:
    """The column sizes of the schema, checked here so every database refuses alike."""
    if len(value) > most:
        raise RecordError(where, name, f"{len(value)} characters, more than the {most} allowed")


def _author(raw: Mapping[str, Any], where: str) -> AuthorInput | None:
    value = raw.get("author")
    if value is None or value == "":
        return None
    if isinstance(value, str):
        value = {"name": value}
    if not isinstance(value, dict):
        raise RecordError(where, "author", "expected a name or {name, slug, bio, url}")
    unknown = sorted(str(key) for key in set(value) - AUTHOR_FIELDS)
    if unknown:
        raise RecordError(
            where, "author", f"unknown field {unknown[0]!r}; allowed: name, slug, bio, url"
        )
    name = plain_text(_text(value, "name", where) or "")
    slug = _text(value, "slug", where)
    if not name and not slug:
        raise RecordError(where, "author", "has no name")
    slug = slug.strip() if slug else slugify(name)
    if not _SLUG.fullmatch(slug):
        raise RecordError(where, "author.slug", f"{bounded_repr(slug, 80)} is not a lowercase slug")
    _limit(where, "author.slug", slug, 200)
    _limit(where, "author.name", name, 300)
    bio = _text(value, "bio", where)
    url = _absolute_url(value, "url", where, "")
    return AuthorInput(slug=slug, name=name or slug, bio=plain_text(bio) if bio else None, url=url)


def _tags(raw: Mapping[str, Any], where: str) -> tuple[str, ...]:
    value = raw.get("tags")
    if value is None:
        return ()
    if isinstance(value, str):
        value = [t for t in value.split(",")]
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        raise RecordError(where, "tags", "expected a list of tag names")
    names: dict[str, str] = {}
    for tag in value:
        name = plain_text(tag)
        _limit(where, "tags", name, 200)
        if name and slugify(name):
            names.setdefault(slugify(name), name)  # "Korea" and "korea" are one tag
    return tuple(names.values())


def validate(raw: Mapping[str, Any], where: str, ctx: ImportContext) -> ArticleInput:
    """Check and normalise one record. Raises RecordError naming the field and the reason."""
    if not isinstance(raw, Mapping):
        raise RecordError(
            where, None, f"expected an object with article fields, got {bounded_repr(raw)}"
        )
    unknown = sorted(str(key) for key in set(raw) - FIELDS)  # YAML keys may be numbers
    if unknown:
        raise RecordError(where, unknown[0], "unknown field; allowed: " + ", ".join(sorted(FIELDS)))

    title = plain_text(_text(raw, "title", where) or "")
    if not title:
        raise RecordError(where, "title", "missing or empty")
    _limit(where, "title", title, 1000)

    guid = _text(raw, "guid", where)
    if guid is not None:
        guid = guid.strip()
        if not guid or has_forbidden_chars(guid):
            raise RecordError(
                where, "guid", f"{bounded_repr(guid, 80)} is empty or has control characters"
            )
        _limit(where, "guid", guid, 2000)

    url = _absolute_url(raw, "url", where, ctx.base_url)
    body = _text(raw, "body", where)
    markdown = _text(raw, "body_markdown", where)
    if body is not None and markdown is not None:
        raise RecordError(where, "body_markdown", "give body (HTML) or body_markdown, not both")
    source_html = body if body is not None else _markdown.render(xml_safe(markdown or ""))
    body_html = sanitize_html(source_html, url or ctx.base_url + "/")
    size = len(body_html.encode("utf-8"))
    if size > ctx.max_body_bytes:
        raise RecordError(
            where,
            "body_markdown" if markdown is not None else "body",
            f"{size / 1e6:.1f} MB is larger than the {ctx.max_body_bytes / 1e6:.1f} MB allowed "
            "([articles] max_body_bytes)",
        )

    slug_raw = _text(raw, "slug", where)
    if slug_raw is not None and slug_raw.strip():
        slug = slug_raw.strip()
        if not _SLUG.fullmatch(slug) or len(slug) > 200:
            raise RecordError(
                where,
                "slug",
                f"{bounded_repr(slug, 80)} is not a slug (lowercase letters, digits, hyphens)",
            )
        slug_given = True
    else:
        slug = (
            _slug_from(url, title)
            or "article-" + hashlib.sha1((guid or title).encode()).hexdigest()[:10]
        )
        slug_given = False

    status_raw = _text(raw, "status", where) or "published"
    try:
        status = ArticleStatus(status_raw.strip().lower())
    except ValueError:
        raise RecordError(
            where, "status", f"{bounded_repr(status_raw)} is not 'published' or 'draft'"
        ) from None

    summary = _text(raw, "summary", where)
    summary = plain_text(summary) if summary is not None else None
    image = _absolute_url(raw, "image", where, url or ctx.base_url)

    article = ArticleInput(
        guid=guid,
        slug=slug,
        slug_given=slug_given,
        title=title,
        summary=summary or None,
        body_html=body_html,
        url=url,
        image=image,
        author=_author(raw, where),
        tags=_tags(raw, where),
        published_at=_datetime(raw, "published_at", where, ctx.timezone),
        updated_at=_datetime(raw, "updated_at", where, ctx.timezone),
        status=status,
    )
    content = {k: v for k, v in asdict(article).items() if k not in ("fingerprint", "where")}
    digest = hashlib.sha256(json.dumps(content, default=str).encode()).hexdigest()
    return replace(article, fingerprint=digest, where=where)


def _slug_from(url: str | None, title: str) -> str:
    if url:
        segments = [s for s in urlsplit(url).path.split("/") if s]
        if segments:
            last = re.sub(r"\.(html?|php|aspx?)$", "", unquote(segments[-1]))
            candidate = slugify(last)
            if candidate and not candidate.isdigit():
                return candidate
    return slugify(title)


def stable_guid(base_url: str, slug: str) -> str:
    """A guid for a record that brought none: the same for the same site and slug."""
    return "urn:uuid:" + str(uuid.uuid5(uuid.NAMESPACE_URL, f"{base_url}/articles/{slug}"))
