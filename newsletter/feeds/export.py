"""Static export: every feed, the OPML list and the feeds' browser stylesheet (feed.xsl, which
the RSS and Atom feeds name relative to themselves) as files for nginx or a CDN.

Files whose bytes would not change are left alone (their mtime too), so a CDN sync or an
rsync after `newsletter feeds build` moves only what changed.

A file lies at the decoded path of its URL (`/tags/%ED%95%9C/feed.rss` is written as
`tags/한/feed.rss`), because nginx decodes the request URI before it looks for the file.
Each file is written under a random temporary name created with O_EXCL and O_NOFOLLOW and
then renamed into place, so nothing planted in the folder is followed. A file that cannot
be written is reported and the others are still written.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from urllib.parse import unquote

import sqlalchemy as sa

from newsletter.config import Settings
from newsletter.errors import NewsletterError
from newsletter.feeds.cache import FeedCache
from newsletter.feeds.render import FORMATS, STYLESHEET
from newsletter.feeds.specs import opml_document
from newsletter.feeds.stylesheet import stylesheet

NAME_MAX = 255  # bytes in one file name on ext4, XFS, btrfs, APFS and most others


class OutputFolderError(NewsletterError):
    """The output folder cannot be created or written to; nothing was exported."""

    def __init__(self, outdir: Path, reason: str) -> None:
        super().__init__(f"{outdir}: cannot write there: {reason}")
        self.outdir = outdir
        self.reason = reason


@dataclass(frozen=True)
class FileError:
    """One file that could not be written: its path under the output folder and why."""

    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


@dataclass
class ExportReport:
    written: int = 0
    unchanged: int = 0
    errors: list[FileError] = field(default_factory=list)
    # things done differently from what was asked (a name shortened), one line each
    notices: list[str] = field(default_factory=list)

    @property
    def failed(self) -> int:
        return len(self.errors)


def check_outdir(outdir: Path) -> None:
    """Create `outdir` if needed and make sure files can be created in it, before anything is
    rendered; OutputFolderError says why not."""
    try:
        outdir.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=outdir, prefix=".newsletter-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise OutputFolderError(outdir, exc.strerror or str(exc)) from None


def _short_name(name: str, keep_suffix: bool) -> str:
    """`name` cut to fit in NAME_MAX bytes: as much of its beginning as fits (at a character
    boundary), a hash of the whole name, and its suffix for a file."""
    stem, dot, suffix = name.rpartition(".") if keep_suffix and "." in name else (name, "", "")
    tail = "-" + hashlib.sha256(name.encode("utf-8")).hexdigest()[:16] + dot + suffix
    room = NAME_MAX - len(tail.encode("utf-8"))
    head = stem.encode("utf-8")[:room].decode("utf-8", errors="ignore").rstrip("-")
    return head + tail


def disk_path(url_path: str) -> tuple[str, bool]:
    """The relative file path for the (percent-encoded) URL path of a feed, as nginx looks
    for it, and whether a name in it had to be shortened to fit a file system. ValueError
    for a path that would leave the folder or cannot be a file name."""
    decoded = unquote(url_path, errors="strict").lstrip("/")
    parts = decoded.split("/")
    if any(p in ("", ".", "..") or "\x00" in p for p in parts):
        raise ValueError("not a path that stays inside the folder")
    shortened = False
    for i, part in enumerate(parts):
        if len(part.encode("utf-8")) > NAME_MAX:
            parts[i] = _short_name(part, keep_suffix=i == len(parts) - 1)
            shortened = True
    return "/".join(parts), shortened


def _write(target: Path, body: bytes) -> None:
    """`body` into `target`, replacing it at once (readers never see a half-written feed)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    # mkstemp: a random name, O_CREAT | O_EXCL | O_NOFOLLOW, mode 0600 (made 0644 below:
    # feeds are public and the web server may run as another user)
    fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(body)
            os.fchmod(handle.fileno(), 0o644)
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def build(engine: sa.Engine, settings: Settings, outdir: Path, now: datetime) -> ExportReport:
    """Write every feed, feeds.opml and feed.xsl under `outdir`. A file that cannot be written is
    reported in `errors` and the others are still written; OutputFolderError when `outdir`
    itself cannot be written to (then nothing is rendered)."""
    check_outdir(outdir)
    cache = FeedCache(engine, settings)
    cache.refresh(now)
    report = ExportReport()
    files: dict[str, bytes] = {
        "feeds.opml": opml_document(settings, cache.all_refs()),
        STYLESHEET: stylesheet(settings),
    }
    for ref in cache.all_refs():
        spec = cache.spec(ref)
        for fmt in FORMATS:
            # the URL path of the feed is its path under outdir, so outdir can be the web root
            url_path = spec.feed_path + "." + fmt
            try:
                relative, shortened = disk_path(url_path)
            except ValueError as exc:
                report.errors.append(FileError(unquote(url_path).lstrip("/"), str(exc)))
                continue
            if shortened:
                report.notices.append(
                    f"{unquote(url_path).lstrip('/')}: a name in it is longer than "
                    f"{NAME_MAX} bytes, more than a file system takes; written as {relative} "
                    "(nginx will not find it at the feed's URL: give it a shorter slug)"
                )
            files[relative] = cache.render(ref, fmt, now).body
    for relative, body in sorted(files.items()):
        target = outdir / relative
        try:
            if target.is_file() and not target.is_symlink() and target.read_bytes() == body:
                report.unchanged += 1
                continue
            _write(target, body)
        except OSError as exc:
            report.errors.append(FileError(relative, exc.strerror or str(exc)))
            continue
        report.written += 1
    return report
