"""What each feed is: its title, description, URLs (FeedSpec), and the OPML list of them
all (pure: the settings and the feed references come in)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote

from newsletter.config import Settings
from newsletter.feeds import render


@dataclass(frozen=True)
class FeedRef:
    """A feed known to exist: what its spec needs besides the site settings."""

    key: str
    kind: str  # site | tag | author
    slug: str
    name: str
    description: str
    row_id: int | None
    # when the feed last changed (its content version's time; EPOCH: never stamped)
    changed_at: datetime = render.EPOCH


def feed_spec(settings: Settings, ref: FeedRef) -> render.FeedSpec:
    site = settings.site
    base = settings.base_url
    hub = settings.feeds.websub_hub or None
    if ref.kind == "site":
        return render.FeedSpec(
            key=ref.key,
            title=site.title,
            description=site.description,
            html_url=base + "/",
            feed_path="/feed",
            base_url=base,
            language=site.language,
            site_title=site.title,
            hub=hub,
        )
    section = "tags" if ref.kind == "tag" else "authors"
    path = f"/{section}/{quote(ref.slug)}"
    what = ref.name if ref.kind == "tag" else f"Articles by {ref.name}"
    return render.FeedSpec(
        key=ref.key,
        title=f"{what} · {site.title}",
        description=ref.description or f"{what} from {site.title}",
        html_url=base + path,
        feed_path=path + "/feed",
        base_url=base,
        language=site.language,
        site_title=site.title,
        hub=hub,
    )


def opml_document(
    settings: Settings,
    refs: list[FeedRef],
    extra: list[tuple[str, str, str]] | None = None,
    created: datetime | None = None,
) -> bytes:
    """OPML listing the RSS feed of the site, every tag and every author, then `extra`
    feeds as (title, feed URL, page URL) in the order given (the digests' feeds).

    Its dateCreated is `created`, by default the time of the newest change among the listed
    feeds (their content versions): feeds that did not change give the same bytes (a static
    export leaves the file alone), and a feed added, renamed or changed gives a newer date."""
    order = {"site": 0, "tag": 1, "author": 2}
    outlines = []
    for ref in sorted(refs, key=lambda r: (order[r.kind], r.name.lower(), r.slug)):
        spec = feed_spec(settings, ref)
        outlines.append((spec.title, spec.url("rss"), spec.html_url))
    outlines.extend(extra or [])
    if created is None:
        created = max((ref.changed_at for ref in refs), default=render.EPOCH)
    return render.opml(f"Feeds of {settings.site.title}", outlines, created)
