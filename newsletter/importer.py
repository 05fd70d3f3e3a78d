"""Reading articles from JSON, JSON Lines, Markdown with front matter and RSS/Atom feeds.

Each source yields `Parsed` items: a validated `ArticleInput`, or the `RecordError` that says
which record (file and line or record number), which field and why it was refused. Nothing
here touches the database; newsletter.articles stores what comes out.
"""

from __future__ import annotations

import calendar
import hashlib
import json
import re
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, date, datetime, tzinfo
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit

import feedparser
import httpx
import yaml
from markdown_it import MarkdownIt

from newsletter.errors import RecordError, SourceError
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
    timezone: tzinfo
    max_body_bytes: int


Parsed = ArticleInput | RecordError


# ----------------------------------------------------------------------------- validation


def _text(raw: Mapping[str, Any], name: str, where: str) -> str | None:
    value = raw.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise RecordError(where, name, f"expected text, got {type(value).__name__} {value!r:.60}")
    return value


def _datetime(raw: Mapping[str, Any], name: str, where: str, tz: tzinfo) -> datetime | None:
    value = raw.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, date):  # YAML front matter turns 2024-05-01 into a date
        parsed = datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip().replace(" ", "T", 1))
        except ValueError:
            raise RecordError(
                where, name, f"{value!r} is not an ISO 8601 date such as 2024-05-01T09:30:00+07:00"
            ) from None
    else:
        raise RecordError(where, name, f"expected an ISO 8601 date string, got {value!r:.60}")
    if parsed.tzinfo is None:  # no offset given: the publication's own time zone
        parsed = parsed.replace(tzinfo=tz)
    try:
        result = parsed.astimezone(UTC)
    except (OverflowError, ValueError):
        result = datetime.min.replace(tzinfo=UTC)
    if not 1970 <= result.year <= 9000:
        raise RecordError(where, name, f"{value!s:.40} is outside the years 1970 to 9000")
    return result


def _absolute_url(raw: Mapping[str, Any], name: str, where: str, base: str) -> str | None:
    value = _text(raw, name, where)
    if value is None or not value.strip():
        return None
    value = value.strip()
    if has_forbidden_chars(value) or any(c.isspace() for c in value):
        raise RecordError(where, name, f"{value!r:.80} contains spaces or control characters")
    try:
        absolute = iri_to_uri(urljoin(base + "/", value))
    except UnicodeError:
        raise RecordError(where, name, f"{value!r:.80} has an invalid host name") from None
    parts = urlsplit(absolute)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise RecordError(where, name, f"{value!r:.80} is not an http(s) URL")
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
        raise RecordError(where, "author.slug", f"{slug!r:.80} is not a lowercase slug")
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
        raise RecordError(where, None, f"expected an object with article fields, got {raw!r:.60}")
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
            raise RecordError(where, "guid", f"{guid!r:.80} is empty or has control characters")
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
                where, "slug", f"{slug!r:.80} is not a slug (lowercase letters, digits, hyphens)"
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
            where, "status", f"{status_raw!r} is not 'published' or 'draft'"
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


# ----------------------------------------------------------------------------- sources


@dataclass
class Source:
    """One thing to import: a file, or a feed at an http(s) URL."""

    name: str
    kind: str  # json | jsonl | markdown | feed
    data: bytes

    def count(self) -> int:
        """About how many records (for the progress bar), without parsing the source."""
        if self.kind == "jsonl":
            return sum(1 for line in self.data.split(b"\n") if line.strip())
        if self.kind == "markdown":
            return 1
        if self.kind == "feed":
            return self.data.count(b"<item") + self.data.count(b"<entry")
        return self.data.count(b'"title"')  # JSON: one title per article


def open_source(location: str, timeout: float = 30.0) -> list[Source]:
    """The sources at `location`: a file, a folder (its .json, .jsonl, .md and feed files),
    or an http(s) URL of a feed. Raises SourceError if it cannot be read."""
    if re.match(r"https?://", location):
        try:
            response = httpx.get(location, timeout=timeout, follow_redirects=True)
            response.raise_for_status()
        except httpx.HTTPError as exc:
            raise SourceError(f"{location}: cannot fetch: {exc}") from None
        return [Source(location, "feed", response.content)]
    path = Path(location)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in _SUFFIXES)
        return [s for p in files for s in open_source(str(p))]
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SourceError(f"{location}: cannot read: {exc.strerror}") from None
    kind = _SUFFIXES.get(path.suffix.lower()) or _sniff(data)
    if kind is None:
        raise SourceError(
            f"{location}: unknown format; expected .json, .jsonl, .md or an RSS/Atom feed"
        )
    return [Source(location, kind, data)]


_SUFFIXES = {
    ".json": "json",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".md": "markdown",
    ".markdown": "markdown",
    ".xml": "feed",
    ".rss": "feed",
    ".atom": "feed",
}


def _sniff(data: bytes) -> str | None:
    head = data.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    return {b"<": "feed", b"[": "json", b"{": "jsonl", b"-": "markdown"}.get(head)


def read(source: Source, ctx: ImportContext) -> Iterator[Parsed]:
    """Every record of `source`, validated. A record that cannot be parsed at all is a
    RecordError too, so the good records of the same file still come through."""
    reader = {
        "json": _read_json,
        "jsonl": _read_jsonl,
        "markdown": _read_markdown,
        "feed": _read_feed,
    }[source.kind]
    for where, raw in reader(source):
        if isinstance(raw, RecordError):
            yield raw
            continue
        try:
            yield validate(raw, where, ctx)
        except RecordError as exc:
            if source.kind == "markdown":  # point at the front-matter line of the field
                exc = RecordError(
                    f"{where}:{_field_line(source, exc.field)}", exc.field, exc.reason
                )
            yield exc


def _field_line(source: Source, field_name: str | None) -> int:
    top = (field_name or "").split(".")[0]
    for number, line in enumerate(_decode(source).split("\n"), start=1):
        if top and re.match(rf"{re.escape(top)}\s*:", line):
            return number
    return 1


RawRecords = Iterator[tuple[str, "Mapping[str, Any] | RecordError"]]


def _decode(source: Source) -> str:
    try:
        return source.data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SourceError(f"{source.name}: not UTF-8 (byte {exc.start})") from None


def _read_json(source: Source) -> RawRecords:
    text = _decode(source)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SourceError(f"{source.name}:{exc.lineno}: not valid JSON: {exc.msg}") from None
    if isinstance(data, dict):
        data = data.get("articles", [data]) if "title" not in data else [data]
    if not isinstance(data, list):
        raise SourceError(f"{source.name}: expected a JSON array of articles")
    for number, record in enumerate(data, start=1):
        yield f"{source.name}#{number}", record


def _read_jsonl(source: Source) -> RawRecords:
    # Only "\n" ends a record: U+2028, U+0085 and friends may stand unescaped inside JSON
    # strings, and str.splitlines() would cut a record there.
    for number, line in enumerate(_decode(source).split("\n"), start=1):
        line = line.removesuffix("\r")
        if not line.strip():
            continue
        where = f"{source.name}:{number}"
        try:
            yield where, json.loads(line)
        except json.JSONDecodeError as exc:
            yield where, RecordError(where, None, f"not valid JSON: {exc.msg}")


def _read_markdown(source: Source) -> RawRecords:
    text = _decode(source)
    where = source.name
    match = re.match(r"\A---[ \t]*\r?\n(.*?)^(---|\.\.\.)[ \t]*\r?\n?", text, re.S | re.M)
    if not match:
        yield where, RecordError(where + ":1", None, "no front matter (a --- header) found")
        return
    try:
        meta = yaml.safe_load(match.group(1)) or {}
    except yaml.YAMLError as exc:
        line = getattr(getattr(exc, "problem_mark", None), "line", 0) + 2
        yield where, RecordError(f"{where}:{line}", None, f"front matter is not valid YAML: {exc}")
        return
    if not isinstance(meta, dict):
        yield where, RecordError(where + ":1", None, "front matter is not a mapping of fields")
        return
    body = text[match.end() :]
    if "body" not in meta and "body_markdown" not in meta and body.strip():
        meta["body_markdown"] = body
    yield where, meta


def _struct_time(value: Any) -> str | None:
    if not value:
        return None
    return datetime.fromtimestamp(calendar.timegm(value), UTC).isoformat()  # feedparser gives UTC


def _read_feed(source: Source) -> RawRecords:
    parsed = feedparser.parse(source.data, sanitize_html=False, resolve_relative_uris=False)
    if parsed.bozo and not parsed.entries:
        raise SourceError(
            f"{source.name}: not a readable RSS or Atom feed: {parsed.bozo_exception}"
        )
    site = parsed.feed.get("link")
    for number, entry in enumerate(parsed.entries, start=1):
        yield f"{source.name}#entry {number}", _feed_entry(entry, site)


def _feed_entry(entry: Any, site: str | None) -> dict[str, Any]:
    content = entry.get("content") or []
    html_parts = [c.get("value", "") for c in content if "html" in c.get("type", "text/html")]
    body = html_parts[0] if html_parts else entry.get("summary", "")
    summary = entry.get("summary") if html_parts else None
    author: Any = None
    detail = entry.get("author_detail") or {}
    if entry.get("author"):
        author = {"name": entry["author"]}
        if detail.get("href"):
            author["url"] = detail["href"]
    tags = [t.get("label") or t.get("term") for t in entry.get("tags", []) if t.get("term")]
    image = None
    for enclosure in entry.get("enclosures", []):
        if enclosure.get("type", "").startswith("image/") and enclosure.get("href"):
            image = enclosure["href"]
            break
    if image is None:
        for media in entry.get("media_content", []) + entry.get("media_thumbnail", []):
            if media.get("url") and media.get("medium", "image") == "image":
                image = media["url"]
                break
    # entry.get("updated_parsed") quietly falls back to the publication date; only an
    # element that is really there counts as an update time.
    updated = _struct_time(entry["updated_parsed"]) if "updated_parsed" in entry else None
    record: dict[str, Any] = {
        "guid": entry.get("id") or entry.get("link"),
        "title": entry.get("title", ""),
        "summary": summary,
        "body": body,
        "url": entry.get("link") or None,
        "author": author,
        "tags": tags,
        "published_at": _struct_time(entry.get("published_parsed")) or updated,
        "updated_at": updated,
        "image": image,
    }
    if site and record["url"]:
        record["url"] = urljoin(site, record["url"])
    return {k: v for k, v in record.items() if v not in (None, "", [])}
