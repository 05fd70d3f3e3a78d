"""The public archive of digests: issue pages, each digest's list of issues with a sign-up
form, and each digest's feeds of issues.

An issue page (`/digests/{slug}/{run}`, the "view in browser" link of every email) shows the
whole issue, not one reader's narrowed view. Only issues that went out (sending or sent) have
pages; posts withdrawn since (unpublished) are left out of pages and feeds. The feeds of
issues are rendered per request: a digest sends a few issues a day at most, and the bytes
give the ETag.
"""

from __future__ import annotations

import hashlib
import html
import re
from collections.abc import Callable
from datetime import datetime
from email.utils import format_datetime, parsedate_to_datetime
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from newsletter.config import Settings
from newsletter.digests.service import ArchivedIssue, Digests
from newsletter.errors import NotFoundError
from newsletter.feeds import render as feeds
from newsletter.models import ArticleStatus, ArticleView
from newsletter.web.subscriptions import offer
from newsletter.web.templating import form_page

router = APIRouter()
ARCHIVE_ITEMS = 100  # issues listed on a digest's page
ISSUE_ID = re.compile(r"[0-9]{1,18}")  # a run id; longer would overflow the database's integer
DATE_TIME = "%-d %B %Y, %H:%M %Z"
Outline = tuple[str, str, str]  # (title, feed URL, page URL), as in an OPML list


def _service(request: Request) -> Digests:
    service: Digests = request.app.state.digests
    return service


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _local(timezone: str) -> Callable[..., str]:
    """Formats an aware datetime in the digest's time zone (templates call it)."""
    zone = ZoneInfo(timezone)

    def local(value: datetime | None, fmt: str = DATE_TIME) -> str:
        return value.astimezone(zone).strftime(fmt) if value else ""

    return local


def _page_path(slug: str) -> str:
    return f"/digests/{quote(slug)}"


async def _signup(request: Request, slug: str) -> dict[str, Any]:
    """The sign-up form's offer with this digest first, which the form ticks (the only
    digest on offer is sent as a hidden field)."""
    found = await offer(request)
    digests = list(found.get("digests") or [])
    found["digests"] = sorted(digests, key=lambda d: d[0] != slug)
    return found


def _context(request: Request, slug: str, name: str, timezone: str) -> dict[str, Any]:
    """What both pages share: the feeds to announce, the archive's path, local dates."""
    return {
        "feed_path": _page_path(slug) + "/feed",
        "feed_title": f"{name} · {_settings(request).site.title}",
        "archive_path": _page_path(slug),
        "local": _local(timezone),
    }


# ----------------------------------------------------------------------------- pages


@router.get("/digests/{slug}", response_class=HTMLResponse)
async def archive_page(request: Request, slug: str) -> Response:
    """A digest: what it is, a sign-up form for it and its past issues, newest first."""
    digest, issues = await run_in_threadpool(_service(request).archive, slug, ARCHIVE_ITEMS)
    context = {
        **_context(request, digest.slug, digest.name, digest.timezone),
        "digest": digest,
        "issues": [(i) for i in issues],
        **await _signup(request, digest.slug),
    }
    return form_page(request, "digest_archive.html", context)


# ----------------------------------------------------------------------------- feeds


def _spec(settings: Settings, slug: str, name: str, description: str) -> feeds.FeedSpec:
    site = settings.site
    path = _page_path(slug)
    return feeds.FeedSpec(
        key=f"digest:{slug}",
        title=f"{name} · {site.title}",
        description=description or f"Every issue of {name}, the email digest of {site.title}",
        html_url=settings.base_url + path,
        feed_path=path + "/feed",
        base_url=settings.base_url,
        language=site.language,
        site_title=site.title,
        # No hub: WebSub pings go out for the article feeds only, so a hub would never
        # hear of a new issue and its subscribers would wait for nothing.
        hub=None,
    )


def _entry(issue: ArchivedIssue, base_url: str) -> ArticleView:
    """An issue as a feed item: its page is its link and its stable id."""
    items = []
    for post in issue.posts:
        article = post.article
        link = html.escape(article.link(base_url), quote=True)
        summary = f"<br>{html.escape(article.summary)}" if article.summary else ""
        items.append(f'<li><a href="{link}">{html.escape(article.title)}</a>{summary}</li>')
    body = f"<ul>{''.join(items)}</ul>" if items else ""
    return ArticleView(
        guid=issue.url,
        slug=str(issue.run_id),
        title=issue.subject or issue.digest.name,
        summary=" · ".join(p.article.title for p in issue.posts),
        body_html=body,
        url=issue.url,
        image=None,
        author=None,
        tags=(),
        status=ArticleStatus.published,
        published_at=issue.date,
        updated_at=issue.date,
    )


def _not_modified(request: Request, etag: str, last_modified: datetime | None) -> bool:
    """RFC 9110 13.2.2: If-None-Match decides when present (weak comparison); otherwise
    If-Modified-Since answers 304 when no issue is newer than that time."""
    if_none_match = request.headers.get("if-none-match")
    if if_none_match is not None:
        ours = etag.removeprefix("W/")
        tags = [t.strip().removeprefix("W/") for t in if_none_match.split(",")]
        return "*" in tags or ours in tags
    since = request.headers.get("if-modified-since")
    if since is None or last_modified is None:
        return False
    try:
        when = parsedate_to_datetime(since)
    except (TypeError, ValueError, IndexError):
        return False  # an unparseable date is ignored, as the RFC says
    return when.tzinfo is not None and last_modified <= when


@router.api_route("/digests/{slug}/feed.{fmt}", methods=["GET", "HEAD"], include_in_schema=False)
async def digest_feed(request: Request, slug: str, fmt: str) -> Response:
    """A digest's issues as RSS 2.0, Atom 1.0 or JSON Feed, newest first."""
    if fmt not in feeds.FORMATS:
        raise NotFoundError("feed", f"{slug}/feed.{fmt}")
    settings = _settings(request)
    digest, issues = await run_in_threadpool(_service(request).archive, slug, settings.feeds.items)
    spec = _spec(settings, digest.slug, digest.name, digest.description)
    entries = [_entry((i), settings.base_url) for i in issues]
    body = feeds.render(spec, fmt, entries)
    etag = 'W/"' + hashlib.sha1(body).hexdigest()[:20] + '"'
    headers = {
        "etag": etag,
        "cache-control": f"public, max-age={settings.feeds.max_age}",
        "link": f'<{spec.url(fmt)}>; rel="self"',
        "access-control-allow-origin": "*",
    }
    newest = max((i.date for i in issues), default=None)
    last_modified = newest.replace(microsecond=0) if newest else None
    if last_modified is not None:
        headers["last-modified"] = format_datetime(last_modified, usegmt=True)
    if _not_modified(request, etag, last_modified):
        return Response(status_code=304, headers=headers)
    content_type = feeds.CONTENT_TYPES[fmt]
    if request.method == "HEAD":
        headers["content-length"] = str(len(body))
        return Response(b"", headers=headers, media_type=content_type)
    return Response(body, headers=headers, media_type=content_type)


def _outlines(service: Digests, settings: Settings) -> list[Outline]:
    found = []
    for digest in sorted(service.all(), key=lambda d: (d.name.lower(), d.slug)):
        try:
            _, issues = service.archive(digest.slug, 1)
        except NotFoundError:
            continue  # deleted meanwhile
        if issues:  # a digest that never sent anything would be an empty feed
            spec = _spec(settings, digest.slug, digest.name, digest.description)
            found.append((spec.title, spec.url("rss"), spec.html_url))
    return found


async def feed_outlines(request: Request) -> list[Outline]:
    """The RSS feed of every digest that has sent an issue, for /feeds.opml."""
    return await run_in_threadpool(_outlines, _service(request), _settings(request))


# ----------------------------------------------------------------------------- issues


@router.get("/digests/{slug}/{issue}", response_class=HTMLResponse)
async def issue_page(request: Request, slug: str, issue: str) -> Response:
    """One issue as a web page, whole (the "view in browser" link of its emails)."""
    if not ISSUE_ID.fullmatch(issue):
        raise NotFoundError("issue", f"{slug}/{issue}")
    found = await run_in_threadpool(_service(request).archived_issue, slug, int(issue))
    info = found.digest
    context = {
        **_context(request, info.slug, info.name, info.timezone),
        "issue": found,
        "digest": info,
        **await _signup(request, info.slug),
    }
    return form_page(request, "digest_issue.html", context)
