"""Which feeds a change touches, and stamping them with a new content version.

Feed keys name feeds: "site", "tag:<id>", "author:<id>". Every use case that changes what a
feed shows (publish, edit, retag, unpublish, delete, an author's or a tag's new name) calls
`stamp` in its own transaction, with the keys of the feeds before and after the change.

After such a commit, listeners registered for the same engine (the feed cache of a web
process) are told at once, so the next request in this process never sees the old version;
other processes see it at their next poll of the version counter.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session

from newsletter import storage
from newsletter.models import Article, ArticleStatus

SITE_KEY = "site"

_listeners: weakref.WeakKeyDictionary[sa.Engine, list[weakref.WeakMethod[Callable[[], None]]]]
_listeners = weakref.WeakKeyDictionary()


def tag_key(tag_id: int) -> str:
    return f"tag:{tag_id}"


def author_key(author_id: int) -> str:
    return f"author:{author_id}"


def keys_of_article(session: Session, article: Article) -> set[str]:
    """The feeds `article` appears in right now (none unless it is published)."""
    if article.status != ArticleStatus.published or article.id is None:
        return set()
    keys = {SITE_KEY} | {tag_key(t) for t in storage.tag_ids_of(session, article.id)}
    if article.author_id is not None:
        keys.add(author_key(article.author_id))
    return keys


def keys_of_author(session: Session, author_id: int) -> set[str]:
    """An author's feed and every feed showing one of their published articles."""
    return {author_key(author_id)} | _keys(
        *storage.published_authors_and_tags(session, author_id=author_id)
    )


def keys_of_tag(session: Session, tag_id: int) -> set[str]:
    """A tag's feed and every feed showing one of its published articles."""
    return {tag_key(tag_id)} | _keys(*storage.published_authors_and_tags(session, tag_id=tag_id))


def _keys(any_published: bool, authors: set[int], tags: set[int]) -> set[str]:
    keys = {author_key(a) for a in authors} | {tag_key(t) for t in tags}
    return keys | {SITE_KEY} if any_published else keys


def stamp(session: Session, keys: Iterable[str], now: datetime) -> None:
    """Give the feeds in `keys` a new version in the session's transaction; listeners of
    the session's engine hear of it after the commit."""
    if not storage.touch_feeds(session, keys, now):
        return
    if not sa.event.contains(session, "after_commit", _notify):
        sa.event.listen(session, "after_commit", _notify, once=True)


def on_change(engine: sa.Engine, callback: Callable[[], None]) -> None:
    """Call the bound method `callback` after each commit through `engine`, in this
    process, that stamped feeds. Held weakly: a cache that is gone is not kept alive."""
    refs = _listeners.setdefault(engine, [])
    refs[:] = [ref for ref in refs if ref() is not None]
    refs.append(weakref.WeakMethod(callback))


def _notify(session: Session) -> None:
    bind = session.get_bind()
    engine = bind.engine if isinstance(bind, sa.Connection) else bind
    for ref in _listeners.get(engine, []):
        callback = ref()
        if callback is not None:
            callback()
