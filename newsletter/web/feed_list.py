"""What the /feeds page lists: the same feeds as /feeds.opml (the site, every topic, every
author, every digest that has sent an issue), each with its page and its three formats."""

from __future__ import annotations

from dataclasses import dataclass

from newsletter.config import Settings
from newsletter.feeds.specs import FeedRef, feed_spec

FORMAT_NAMES = (("rss", "RSS"), ("atom", "Atom"), ("json", "JSON Feed"))
Outline = tuple[str, str, str]  # (title, RSS feed URL, page URL), as web.digests gives them


@dataclass(frozen=True)
class ListedFeed:
    name: str
    page_url: str
    links: tuple[tuple[str, str], ...]  # (format's name, feed URL), RSS first

    @property
    def rss(self) -> str:
        return self.links[0][1]


@dataclass(frozen=True)
class FeedList:
    site: ListedFeed
    tags: list[ListedFeed]
    authors: list[ListedFeed]
    digests: list[ListedFeed]
    opml_url: str


def _listed(name: str, page_url: str, url_of: dict[str, str]) -> ListedFeed:
    return ListedFeed(name, page_url, tuple((label, url_of[fmt]) for fmt, label in FORMAT_NAMES))


def feed_list(settings: Settings, refs: list[FeedRef], digests: list[Outline]) -> FeedList:
    """Every feed, grouped, names in alphabetical order; `digests` as /feeds.opml has them."""
    by_kind: dict[str, list[ListedFeed]] = {"site": [], "tag": [], "author": []}
    if not any(ref.kind == "site" for ref in refs):  # the cache has not loaded yet
        refs = [FeedRef("site", "site", "", "", "", None), *refs]
    for ref in sorted(refs, key=lambda r: (r.name.lower(), r.slug)):
        spec = feed_spec(settings, ref)
        urls = {fmt: spec.url(fmt) for fmt, _ in FORMAT_NAMES}
        by_kind[ref.kind].append(_listed(ref.name or settings.site.title, spec.html_url, urls))
    suffix = f" · {settings.site.title}"  # a digest feed's title is "<name> · <site>"
    issues = []
    for title, rss_url, page_url in digests:
        # a digest's feeds differ by their extension only, like every feed here
        stem = rss_url.removesuffix(".rss")
        urls = {fmt: f"{stem}.{fmt}" for fmt, _ in FORMAT_NAMES}
        issues.append(_listed(title.removesuffix(suffix), page_url, urls))
    return FeedList(
        site=by_kind["site"][0],
        tags=by_kind["tag"],
        authors=by_kind["author"],
        digests=issues,
        opml_url=settings.base_url + "/feeds.opml",
    )
