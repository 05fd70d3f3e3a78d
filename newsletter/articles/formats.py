"""The import formats: JSON, JSON Lines, Markdown with front matter and RSS/Atom, read from
bytes already in memory (pure; newsletter.articles.sources fetches them).

`read` yields `Parsed` items: a validated ArticleInput, or the RecordError that says which
record (file and line or record number), which field and why it was refused. A hostile
record (nested too deeply, a number too long, YAML aliases) is a RecordError of its own: the
other records of the same file still come through.
"""

from __future__ import annotations

import calendar
import contextlib
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin

import feedparser
import yaml

from newsletter.articles.validate import ImportContext, Parsed, validate
from newsletter.errors import RecordError, SourceError


@dataclass
class Source:
    """One thing to import: a file, or a feed at an http(s) URL.

    `origin` is recorded on the articles it creates (the URL, or "file:" and the file's
    resolved path); a `remote` source (fetched from a URL) may update only the articles
    whose origin is its own (see newsletter.articles.service.import_articles)."""

    name: str
    kind: str  # json | jsonl | markdown | feed
    data: bytes
    origin: str = ""
    remote: bool = False

    def count(self) -> int:
        """About how many records (for the progress bar), without parsing the source."""
        if self.kind == "jsonl":
            return sum(1 for line in self.data.split(b"\n") if line.strip())
        if self.kind == "markdown":
            return 1
        if self.kind == "feed":
            return self.data.count(b"<item") + self.data.count(b"<entry")
        return self.data.count(b'"title"')  # JSON: one title per article


SUFFIXES = {
    ".json": "json",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".md": "markdown",
    ".markdown": "markdown",
    ".xml": "feed",
    ".rss": "feed",
    ".atom": "feed",
}


def sniff(data: bytes) -> str | None:
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
        except RecursionError:
            yield RecordError(where, None, _TOO_DEEP)
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
_TOO_DEEP = "nested too deeply (lists or objects inside each other)"


class _FrontMatterLoader(yaml.SafeLoader):
    """SafeLoader without anchors and aliases: a few hundred bytes of aliases expand into
    billions of values (the "billion laughs"), and front matter never needs them."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()  # type: ignore[no-untyped-call]
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            raise yaml.composer.ComposerError(
                None, None, "anchors and aliases (&name, *name) are not allowed", event.start_mark
            )
        return super().compose_node(parent, index)


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
    except RecursionError:
        raise SourceError(f"{source.name}: not readable JSON: {_TOO_DEEP}") from None
    except ValueError as exc:  # a number with more digits than Python converts
        raise SourceError(f"{source.name}: not readable JSON: {exc}") from None
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
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            yield where, RecordError(where, None, f"not valid JSON: {exc.msg}")
            continue
        except RecursionError:
            yield where, RecordError(where, None, f"not readable JSON: {_TOO_DEEP}")
            continue
        except ValueError as exc:  # a number with more digits than Python converts
            yield where, RecordError(where, None, f"not readable JSON: {exc}")
            continue
        yield where, record


def _read_markdown(source: Source) -> RawRecords:
    text = _decode(source)
    where = source.name
    match = re.match(r"\A---[ \t]*\r?\n(.*?)^(---|\.\.\.)[ \t]*\r?\n?", text, re.S | re.M)
    if not match:
        yield where, RecordError(where + ":1", None, "no front matter (a --- header) found")
        return
    try:
        meta = yaml.load(match.group(1), Loader=_FrontMatterLoader) or {}  # a SafeLoader
    except yaml.YAMLError as exc:
        line = getattr(getattr(exc, "problem_mark", None), "line", 0) + 2
        yield where, RecordError(f"{where}:{line}", None, f"front matter is not valid YAML: {exc}")
        return
    except RecursionError:
        yield where, RecordError(where + ":1", None, f"front matter is {_TOO_DEEP}")
        return
    except ValueError as exc:  # a number with more digits than Python converts
        yield where, RecordError(where + ":1", None, f"front matter is not readable: {exc}")
        return
    if not isinstance(meta, dict):
        yield where, RecordError(where + ":1", None, "front matter is not a mapping of fields")
        return
    body = text[match.end() :]
    if "body" not in meta and "body_markdown" not in meta and body.strip():
        meta["body_markdown"] = body
    yield where, meta


def _struct_time(value: Any, text: Any) -> str | None:
    """The ISO 8601 form of a date feedparser read (in UTC), or the date as written when
    it is out of range (year 10000), for validate to refuse with its reason."""
    if not value:
        return None
    try:
        return datetime.fromtimestamp(calendar.timegm(value), UTC).isoformat()
    except (ValueError, OverflowError):
        return str(text or "")[:100] or "an impossible date"


_CHARREF = re.compile(rb"&#(?:[xX]([0-9a-fA-F]{1,8})|([0-9]{1,10}));")


def _no_impossible_charrefs(data: bytes) -> bytes:
    """`data` with character references to no character (&#xD800;, &#x110000;), which
    stop feedparser's loose parser, replaced by U+FFFD."""

    def fix(match: re.Match[bytes]) -> bytes:
        code = int(match[1], 16) if match[1] else int(match[2])
        return match[0] if code <= 0x10FFFF and not 0xD800 <= code <= 0xDFFF else b"&#xFFFD;"

    return _CHARREF.sub(fix, data)


def _read_feed(source: Source) -> RawRecords:
    try:
        parsed = feedparser.parse(
            _no_impossible_charrefs(source.data), sanitize_html=False, resolve_relative_uris=False
        )
    except RecursionError:
        raise SourceError(f"{source.name}: not a readable RSS or Atom feed: {_TOO_DEEP}") from None
    except (UnicodeError, ValueError) as exc:  # what feedparser itself trips over
        raise SourceError(
            f"{source.name}: not a readable RSS or Atom feed: {str(exc)[:200]}"
        ) from None
    if parsed.bozo and not parsed.entries:
        raise SourceError(
            f"{source.name}: not a readable RSS or Atom feed: {parsed.bozo_exception}"
        )
    site = parsed.feed.get("link")
    for number, entry in enumerate(parsed.entries, start=1):
        where = f"{source.name}#entry {number}"
        try:
            yield where, _feed_entry(entry, site)
        except (ValueError, TypeError, OverflowError, AttributeError) as exc:
            yield where, RecordError(where, None, f"unreadable entry: {str(exc)[:200]}")


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
    updated = (
        _struct_time(entry["updated_parsed"], entry.get("updated"))
        if "updated_parsed" in entry
        else None
    )
    record: dict[str, Any] = {
        "guid": entry.get("id") or entry.get("link"),
        "title": entry.get("title", ""),
        "summary": summary,
        "body": body,
        "url": entry.get("link") or None,
        "author": author,
        "tags": tags,
        "published_at": _struct_time(entry.get("published_parsed"), entry.get("published"))
        or updated,
        "updated_at": updated,
        "image": image,
    }
    if site and record["url"]:
        # the feed's own link may be no URL at all ("http://["): validate judges the entry's
        with contextlib.suppress(ValueError):
            record["url"] = urljoin(site, record["url"])
    return {k: v for k, v in record.items() if v not in (None, "", [])}
