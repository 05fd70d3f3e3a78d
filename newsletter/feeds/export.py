"""Static export: every feed and the OPML list as files for nginx or a CDN.

Files whose bytes would not change are left alone (their mtime too), so a CDN sync or an
rsync after `newsletter feeds build` moves only what changed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import sqlalchemy as sa

from newsletter.config import Settings
from newsletter.feeds.cache import FeedCache
from newsletter.feeds.render import FORMATS
from newsletter.feeds.specs import opml_document


@dataclass
class ExportReport:
    written: int = 0
    unchanged: int = 0


def build(engine: sa.Engine, settings: Settings, outdir: Path, now: datetime) -> ExportReport:
    cache = FeedCache(engine, settings)
    cache.refresh(now)
    report = ExportReport()
    files: dict[str, bytes] = {"feeds.opml": opml_document(settings, cache.all_refs())}
    for ref in cache.all_refs():
        spec = cache.spec(ref)
        for fmt in FORMATS:
            # the URL path of the feed is its path under outdir, so outdir can be the web root
            relative = spec.feed_path.lstrip("/") + "." + fmt
            files[relative] = cache.render(ref, fmt, now).body
    for relative, body in sorted(files.items()):
        target = outdir / relative
        if target.is_file() and target.read_bytes() == body:
            report.unchanged += 1
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(target.name + ".tmp")
        temporary.write_bytes(body)
        os.replace(temporary, target)  # readers never see a half-written feed
        report.written += 1
    return report
