"""Articles: importing them (JSON, JSON Lines, Markdown, RSS/Atom), publishing, listing.

    from newsletter import articles
    ctx = articles.ImportContext.from_settings(settings)
    for outcome in articles.import_locations(engine, ctx, ["posts/"], now):
        print(outcome.name, outcome.report.summary() if outcome.report else outcome.error)

validate.py and formats.py are pure (records and bytes in, ArticleInput out); sources.py
reads files and URLs; service.py holds the use cases (import, publish, listings) and
editing.py the editors' tools (browse, create and edit articles, tags, authors): the only
parts that store anything.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from newsletter.articles.editing import (
    MAX_LIMIT,
    ArticleState,
    AuthorCount,
    Page,
    create_article,
    create_author,
    create_tag,
    filter_choices,
    find_articles,
    get_author,
    get_tag,
    list_authors,
    list_tags,
    load_article,
    state_of,
    update_article,
    update_author,
    update_tag,
)
from newsletter.articles.service import (
    ImportReport,
    Listing,
    SourceOutcome,
    TagCount,
    author_listing,
    define_authors_and_tags,
    delete,
    get_article,
    import_articles,
    import_locations,
    list_articles,
    publish,
    recent,
    tag_listing,
    tags_with_counts,
    unpublish,
)
from newsletter.articles.validate import (
    ArticleInput,
    AuthorInput,
    ImportContext,
    Parsed,
    stable_guid,
    validate,
)

__all__ = [
    "MAX_LIMIT",
    "ArticleInput",
    "ArticleState",
    "AuthorCount",
    "AuthorInput",
    "ImportContext",
    "ImportReport",
    "Listing",
    "Page",
    "Parsed",
    "Source",
    "SourceOutcome",
    "TagCount",
    "author_listing",
    "create_article",
    "create_author",
    "create_tag",
    "define_authors_and_tags",
    "delete",
    "filter_choices",
    "find_articles",
    "get_article",
    "get_author",
    "get_tag",
    "import_articles",
    "import_locations",
    "list_articles",
    "list_authors",
    "list_tags",
    "load_article",
    "open_source",
    "publish",
    "read",
    "recent",
    "stable_guid",
    "state_of",
    "tag_listing",
    "tags_with_counts",
    "unpublish",
    "update_article",
    "update_author",
    "update_tag",
    "validate",
]

# issue 12: what readers browse (the front page, the archive by month, search), and what
# goes around an article on its page, and the site map
from newsletter.articles.reading import (
    ArchiveYear,
    FrontPage,
    MonthCount,
    MonthPage,
    SearchResults,
    StoryPage,
    archive_months,
    front_page,
    month_page,
    search,
)
from newsletter.articles.related import (
    ArticlePage,
    SiteMap,
    article_page,
    news_map,
    reading_minutes,
    site_map,
)

__all__ += ["ArticlePage", "SiteMap", "article_page", "news_map", "reading_minutes", "site_map"]

__all__ += [
    "ArchiveYear",
    "FrontPage",
    "MonthCount",
    "MonthPage",
    "SearchResults",
    "StoryPage",
    "archive_months",
    "front_page",
    "month_page",
    "search",
]

if TYPE_CHECKING:
    from newsletter.articles.formats import Source, read
    from newsletter.articles.sources import open_source


def __getattr__(name: str) -> Any:
    # formats (feed, Markdown and YAML readers) and sources (the HTTP client) load on
    # first use: most processes store and list articles without ever reading a feed
    if name in ("Source", "read"):
        from newsletter.articles import formats

        return getattr(formats, name)
    if name == "open_source":
        from newsletter.articles import sources

        return sources.open_source
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
