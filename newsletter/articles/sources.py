"""Where imports come from: files, folders and http(s) URLs, read into `Source` objects.
The only part of the article domain that touches the file system or the network."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from newsletter.articles.formats import SUFFIXES, Source, sniff
from newsletter.errors import SourceError


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
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)
        return [s for p in files for s in open_source(str(p))]
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SourceError(f"{location}: cannot read: {exc.strerror}") from None
    kind = SUFFIXES.get(path.suffix.lower()) or sniff(data)
    if kind is None:
        raise SourceError(
            f"{location}: unknown format; expected .json, .jsonl, .md or an RSS/Atom feed"
        )
    return [Source(location, kind, data)]
