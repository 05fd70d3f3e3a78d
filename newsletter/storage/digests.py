"""Queries on digests, their tags, runs and the posts of each run. Callers pass a Session
and own the transaction."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session, col, select

from newsletter.models import (
    Article,
    ArticleStatus,
    ArticleTag,
    ArticleView,
    Digest,
    DigestRun,
    DigestTag,
    RunArticle,
    RunStatus,
    Tag,
)
from newsletter.storage.articles import views
from newsletter.storage.common import insert_unique


def all_digests(session: Session) -> list[Digest]:
    return list(session.exec(select(Digest).order_by(col(Digest.id))))


def digest_by_slug(session: Session, slug: str) -> Digest | None:
    return session.exec(select(Digest).where(Digest.slug == slug)).first()


def digest_by_id(session: Session, digest_id: int) -> Digest | None:
    return session.get(Digest, digest_id)


def add_digest(session: Session, digest: Digest) -> None:
    """Insert a new digest; DuplicateError (rolled back) when the slug is taken."""
    insert_unique(session, digest, "digest", digest.slug)


def delete_digest(session: Session, digest: Digest) -> None:
    session.delete(digest)


def digest_tags(session: Session, digest_ids: Iterable[int]) -> dict[int, list[Tag]]:
    """digest id -> the tags it draws from, by name (no entry: every tag)."""
    found: dict[int, list[Tag]] = {}
    rows = session.exec(
        select(DigestTag.digest_id, Tag)
        .join(Tag, col(Tag.id) == DigestTag.tag_id)
        .where(col(DigestTag.digest_id).in_(list(digest_ids)))
        .order_by(col(Tag.name))
    )
    for digest_id, tag in rows:
        found.setdefault(digest_id, []).append(tag)
    return found


def set_digest_tags(session: Session, digest_id: int, tag_ids: Iterable[int]) -> None:
    session.execute(sa.delete(DigestTag).where(col(DigestTag.digest_id) == digest_id))
    for tag_id in sorted(set(tag_ids)):
        session.add(DigestTag(digest_id=digest_id, tag_id=tag_id))
    session.flush()


# --------------------------------------------------------------------------- runs


def add_run(session: Session, run: DigestRun) -> tuple[DigestRun, bool]:
    """Insert and commit `run` (the session must hold nothing else), or return the run that
    already answers the same (digest, scheduled time): two schedulers, two web workers or a
    restart make one run, never two. The flag says whether this call created it."""
    session.add(run)
    try:
        session.commit()
    except sa.exc.IntegrityError:
        session.rollback()
        existing = run_for(session, run.digest_id, run.scheduled_for)
        assert existing is not None
        return existing, False
    return run, True


def run_for(session: Session, digest_id: int, scheduled_for: datetime) -> DigestRun | None:
    return session.exec(
        select(DigestRun).where(
            DigestRun.digest_id == digest_id, DigestRun.scheduled_for == scheduled_for
        )
    ).first()


def run_by_id(session: Session, run_id: int) -> DigestRun | None:
    return session.get(DigestRun, run_id)


def latest_run(session: Session, digest_id: int, kind: str | None = None) -> DigestRun | None:
    """The digest's run with the latest scheduled time (of one kind, when given)."""
    query = select(DigestRun).where(DigestRun.digest_id == digest_id)
    if kind is not None:
        query = query.where(DigestRun.kind == kind)
    return session.exec(query.order_by(col(DigestRun.scheduled_for).desc()).limit(1)).first()


def first_run_time(session: Session, digest_id: int) -> datetime | None:
    """The scheduled time of the digest's earliest run (any state)."""
    return session.exec(
        select(sa.func.min(DigestRun.scheduled_for)).where(DigestRun.digest_id == digest_id)
    ).first()


def previous_window_end(session: Session, digest_id: int, except_run: int) -> datetime | None:
    """Where the windows of the digest's composed runs end at the latest (other than
    `except_run`): the next issue starts there, so no post goes out twice."""
    return session.exec(
        select(sa.func.max(DigestRun.window_end)).where(
            DigestRun.digest_id == digest_id,
            col(DigestRun.window_end).is_not(None),
            DigestRun.id != except_run,
        )
    ).first()


def runs(
    session: Session,
    digest_id: int | None = None,
    statuses: Iterable[str] | None = None,
    limit: int = 50,
) -> list[DigestRun]:
    """Runs newest first, of one digest or all, optionally in some statuses."""
    query = select(DigestRun)
    if digest_id is not None:
        query = query.where(DigestRun.digest_id == digest_id)
    if statuses is not None:
        query = query.where(col(DigestRun.status).in_(list(statuses)))
    query = query.order_by(col(DigestRun.scheduled_for).desc(), col(DigestRun.id).desc())
    return list(session.exec(query.limit(limit)))


def runs_in(session: Session, statuses: Iterable[str]) -> list[DigestRun]:
    """Runs in these states, oldest first (the work a sender resumes)."""
    query = select(DigestRun).where(col(DigestRun.status).in_(list(statuses)))
    return list(session.exec(query.order_by(col(DigestRun.id))))


def set_run_status(
    session: Session,
    run_id: int,
    status: RunStatus,
    reason: str | None = None,
    finished_at: datetime | None = None,
    only_from: Iterable[str] | None = None,
) -> bool:
    """Move a run to `status` (only from the states in `only_from`, when given); False
    when the run was not in one of them."""
    values: dict[str, object] = {"status": status.value}
    if reason is not None:
        values["reason"] = reason
    if finished_at is not None:
        values["finished_at"] = finished_at
    statement = sa.update(DigestRun).where(col(DigestRun.id) == run_id).values(**values)
    if only_from is not None:
        statement = statement.where(col(DigestRun.status).in_(list(only_from)))
    result = session.execute(statement)
    return bool(getattr(result, "rowcount", 0))


def lock_digest(session: Session, digest_id: int) -> None:
    """Hold the digest's row until the transaction ends: a write that changes nothing,
    which takes the row lock on PostgreSQL and the database's write lock on SQLite. It
    must be the transaction's first statement (on SQLite a read before it would leave a
    snapshot another writer can outdate)."""
    session.execute(sa.update(Digest).where(col(Digest.id) == digest_id).values(id=col(Digest.id)))


def fix_run_window(
    session: Session, run_id: int, start: datetime, end: datetime, subject: str
) -> bool:
    """Set a composing run's window and subject, only if no other composer has: False when
    one has (the run was composed by a send-now and a sender at once)."""
    result = session.execute(
        sa.update(DigestRun)
        .where(col(DigestRun.id) == run_id, col(DigestRun.window_end).is_(None))
        .values(window_start=start, window_end=end, subject=subject)
    )
    return bool(getattr(result, "rowcount", 0))


# --------------------------------------------------------------------------- posts of a run


def window_articles(
    session: Session,
    start: datetime,
    end: datetime,
    tag_ids: list[int] | None,
    limit: int,
) -> list[tuple[int, ArticleView]]:
    """(id, view) of the published articles dated in (start, end], of any of `tag_ids`
    (None: every tag), newest first, at most `limit`."""
    query = select(Article).where(
        Article.status == ArticleStatus.published,
        col(Article.published_at) > start,
        col(Article.published_at) <= end,
    )
    if tag_ids is not None:
        tagged = select(ArticleTag.article_id).where(col(ArticleTag.tag_id).in_(tag_ids))
        query = query.where(col(Article.id).in_(tagged))
    query = query.order_by(col(Article.published_at).desc(), col(Article.id).desc())
    rows = list(session.exec(query.limit(limit)))
    return list(zip([a.id or 0 for a in rows], views(session, rows), strict=True))


def set_run_articles(session: Session, run_id: int, article_ids: list[int]) -> None:
    session.execute(sa.delete(RunArticle).where(col(RunArticle.run_id) == run_id))
    for position, article_id in enumerate(article_ids):
        session.add(RunArticle(run_id=run_id, position=position, article_id=article_id))
    session.flush()


def run_articles(session: Session, run_id: int) -> list[tuple[int, ArticleView]]:
    """(article id, view) of a run's posts in their order."""
    rows = list(
        session.exec(
            select(Article)
            .join(RunArticle, col(RunArticle.article_id) == Article.id)
            .where(RunArticle.run_id == run_id)
            .order_by(col(RunArticle.position))
        )
    )
    return list(zip([a.id or 0 for a in rows], views(session, rows), strict=True))


def run_post_counts(session: Session, run_ids: list[int]) -> dict[int, int]:
    """run id -> how many posts the issue holds, in one query."""
    if not run_ids:
        return {}
    rows = session.execute(
        sa.select(col(RunArticle.run_id), sa.func.count())
        .where(col(RunArticle.run_id).in_(run_ids))
        .group_by(col(RunArticle.run_id))
    )
    return {run_id: count for run_id, count in rows}


def runs_page(
    session: Session,
    digest_id: int | None,
    statuses: Iterable[str] | None,
    before: tuple[datetime, int] | None,
    limit: int,
) -> list[DigestRun]:
    """Runs newest first (scheduled time, then id), of one digest or all, optionally in
    some statuses, starting after the run `before` names (keyset pagination)."""
    query = select(DigestRun)
    if digest_id is not None:
        query = query.where(DigestRun.digest_id == digest_id)
    if statuses is not None:
        query = query.where(col(DigestRun.status).in_(list(statuses)))
    if before is not None:
        moment, run_id = before
        query = query.where(
            sa.or_(
                col(DigestRun.scheduled_for) < moment,
                sa.and_(col(DigestRun.scheduled_for) == moment, col(DigestRun.id) < run_id),
            )
        )
    query = query.order_by(col(DigestRun.scheduled_for).desc(), col(DigestRun.id).desc())
    return list(session.exec(query.limit(limit)))
