"""Runs as editors follow them: lists and pages of runs with their ledger counts, one
run's progress, and pause, resume and cancel. Composing and sending runs is in service.py;
`Digests` offers these use cases too, so every caller keeps one object.

Database work is synchronous (call it in a thread from async code).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session

from newsletter import cursors, storage
from newsletter.errors import InvalidInputError, NotFoundError
from newsletter.models import ACTIVE_RUNS, Delivery, Digest, DigestRun, RunStatus

RUN_PAGE_MAX = 100


@dataclass(frozen=True)
class RunView:
    id: int
    digest: str
    scheduled_for: datetime
    kind: str
    status: str
    reason: str
    window_start: datetime | None
    window_end: datetime | None
    subject: str
    posts: int
    counts: dict[str, int] = field(default_factory=dict)
    finished_at: datetime | None = None
    created_at: datetime | None = None  # when the run was made (its start)

    @property
    def recipients(self) -> int:
        return sum(self.counts.values())

    @property
    def finished(self) -> bool:
        """The run has ended (sent, skipped, cancelled, missed): nothing follows."""
        return self.status not in (*ACTIVE_RUNS, RunStatus.paused)


@dataclass(frozen=True)
class RunProgress(RunView):
    """A run with its pace, for a page that follows it."""

    sent_last_minute: int = 0  # rows that became sent in the 60 s before the service clock


@dataclass(frozen=True)
class RunPage:
    items: list[RunView]
    next_cursor: str | None  # None: this is the last page


def encode_run_cursor(run: RunView) -> str:
    """Where the next page of runs (newest first) starts: after this run."""
    return cursors.encode(run.scheduled_for.isoformat(), run.id)


def decode_run_cursor(cursor: str) -> tuple[datetime, int]:
    """(scheduled time, id) a cursor continues before; InvalidInputError("cursor") for
    anything this list did not hand out."""
    key = cursors.decode(cursor)
    try:
        if key is None or len(key) != 2 or type(key[1]) is not int or not 0 < key[1] < 2**63:
            raise ValueError(cursor)
        when = datetime.fromisoformat(key[0])
        if when.tzinfo is None:
            raise ValueError(cursor)
        return when, key[1]
    except (TypeError, ValueError):
        raise InvalidInputError("cursor", "not a cursor this list handed out", cursor) from None


def need_digest(session: Session, slug: str) -> Digest:
    """The digest `slug`; NotFoundError when there is none."""
    digest = storage.digest_by_slug(session, slug)
    if digest is None:
        raise NotFoundError("digest", slug)
    return digest


class Runs:
    """The use cases on runs that read them or change their status."""

    def __init__(self, engine: sa.Engine, clock: Callable[[], datetime]) -> None:
        self.engine = engine
        self.clock = clock

    def runs(self, slug: str | None = None, limit: int = 50) -> list[RunView]:
        with Session(self.engine) as session:
            digest_id = need_digest(session, slug).id if slug else None
            found = storage.runs(session, digest_id, limit=limit)
            return self._run_views(session, found)

    def run(self, run_id: int) -> RunView:
        with Session(self.engine) as session:
            run = storage.run_by_id(session, run_id)
            if run is None:
                raise NotFoundError("run", str(run_id))
            return self._run_views(session, [run])[0]

    def progress(self, run_id: int) -> RunProgress:
        """The run's counts now and its pace over the last minute; NotFoundError for an
        unknown run."""
        since = self.clock() - timedelta(seconds=60)
        with Session(self.engine) as session:
            run = self._need_run(session, run_id)
            view = self._run_views(session, [run])[0]
            pace = storage.sent_since(session, run_id, since)
        return RunProgress(**asdict(view), sent_last_minute=pace)

    def run_page(
        self,
        slug: str | None = None,
        status: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> RunPage:
        """One page of runs, newest first (by scheduled time), of one digest or all, in
        one status or any. Pass the page's `next_cursor` back for the next page.
        InvalidInputError names a bad filter ("digest", "status", "limit", "cursor")."""
        if status is not None and status not in RunStatus.__members__:
            allowed = ", ".join(s.value for s in RunStatus)
            raise InvalidInputError("status", f"{status!r:.40} is not one of {allowed}", status)
        if not 1 <= limit <= RUN_PAGE_MAX:
            raise InvalidInputError("limit", f"must be from 1 to {RUN_PAGE_MAX}", limit)
        before = decode_run_cursor(cursor) if cursor else None
        with Session(self.engine) as session:
            digest_id = None
            if slug:
                digest = storage.digest_by_slug(session, slug)
                if digest is None:
                    raise InvalidInputError("digest", f"no digest {slug!r:.80}", slug)
                digest_id = digest.id
            statuses = [status] if status else None
            found = storage.runs_page(session, digest_id, statuses, before, limit + 1)
            items = self._run_views(session, found[:limit])
        more = len(found) > limit
        return RunPage(items, encode_run_cursor(items[-1]) if more else None)

    def _run_views(self, session: Session, found: list[DigestRun]) -> list[RunView]:
        ids = [r.id for r in found if r.id is not None]
        counts = storage.counts(session, ids)
        posts = storage.run_post_counts(session, ids)
        slugs = {d.id: d.slug for d in storage.all_digests(session)}
        return [
            RunView(
                id=r.id or 0,
                digest=slugs.get(r.digest_id, "?"),
                scheduled_for=r.scheduled_for,
                kind=r.kind,
                status=r.status,
                reason=r.reason,
                window_start=r.window_start,
                window_end=r.window_end,
                subject=r.subject,
                posts=posts.get(r.id or 0, 0),
                counts=counts.get(r.id or 0, {}),
                finished_at=r.finished_at,
                created_at=r.created_at,
            )
            for r in found
        ]

    def pause_run(self, run_id: int, reason: str = "paused by an editor") -> RunView:
        with Session(self.engine) as session:
            self._need_run(session, run_id)
            if not storage.set_run_status(
                session, run_id, RunStatus.paused, reason, only_from=ACTIVE_RUNS
            ):
                raise InvalidInputError("run", f"run {run_id} is not composing or sending")
            session.commit()
        return self.run(run_id)

    def resume_run(self, run_id: int) -> RunView:
        """Take a paused run up again (its ledger says where it stopped)."""
        with Session(self.engine) as session:
            run = self._need_run(session, run_id)
            target = RunStatus.sending if run.window_end is not None else RunStatus.composing
            if run.status == RunStatus.paused and storage.deliveries_written(session, run_id) == 0:
                target = RunStatus.composing
            if not storage.set_run_status(
                session, run_id, target, "", only_from=[RunStatus.paused]
            ):
                raise InvalidInputError("run", f"run {run_id} is not paused")
            session.commit()
        return self.run(run_id)

    def cancel_run(self, run_id: int) -> RunView:
        """Stop a run for good: rows not yet sent are skipped."""
        with Session(self.engine) as session:
            self._need_run(session, run_id)
            now = self.clock()
            if not storage.set_run_status(
                session,
                run_id,
                RunStatus.cancelled,
                "cancelled by an editor",
                finished_at=now,
                only_from=[*ACTIVE_RUNS, RunStatus.paused],
            ):
                raise InvalidInputError("run", f"run {run_id} has already ended")
            storage.skip_pending(session, run_id, "run cancelled", now)
            session.commit()
        return self.run(run_id)

    def _need_run(self, session: Session, run_id: int) -> DigestRun:
        run = storage.run_by_id(session, run_id)
        if run is None:
            raise NotFoundError("run", str(run_id))
        return run

    def ledger(self, run_id: int) -> list[Delivery]:
        with Session(self.engine) as session:
            return storage.ledger(session, run_id)
