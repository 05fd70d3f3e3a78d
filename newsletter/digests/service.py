"""Use cases on digests: definitions, previews, test sends, send now, the scheduler's tick,
composing and delivering runs, and the public archive. Reading runs and pausing, resuming
or cancelling them is in runs.py; `Digests` offers those use cases too.

Database work is synchronous (call it in a thread from async code); sending is async.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace
from datetime import datetime, timedelta
from email.utils import format_datetime

import sqlalchemy as sa
from jinja2 import Environment
from sqlmodel import Session

from newsletter import storage
from newsletter.config import Settings
from newsletter.delivery.sender import Build, Progress, Sender
from newsletter.digests import compose
from newsletter.digests.compose import Composer, DigestInfo, Issue, Post, narrow, segment_key
from newsletter.digests.definitions import Definition, DigestInput, check, check_slug, merge
from newsletter.digests.runs import RUN_PAGE_MAX, RunPage, RunProgress, Runs, RunView, need_digest
from newsletter.digests.schedule import Schedule
from newsletter.errors import InvalidInputError, NotFoundError
from newsletter.mail import Composer as MimeComposer
from newsletter.mail import Letter, Mailer
from newsletter.mail.prepared import Filled, Prepared
from newsletter.models import (
    ACTIVE_RUNS,
    DEFAULT_SUBJECT,
    ArticleStatus,
    Delivery,
    DeliveryStatus,
    Digest,
    DigestRun,
    RunKind,
    RunStatus,
)
from newsletter.storage import Recipient
from newsletter.subscribers import links, normalize_email

# the run views live in runs.py; callers import them from here as well
__all__ = [
    "RUN_PAGE_MAX",
    "ArchivedIssue",
    "DigestDetail",
    "DigestView",
    "Digests",
    "Preview",
    "RunPage",
    "RunProgress",
    "RunView",
]

log = logging.getLogger(__name__)
Clock = Callable[[], datetime]
LEDGER_BATCH = 1000
# A firing found this late by the scheduler's own rhythm still counts as on time.
ON_TIME = timedelta(minutes=5)


@dataclass(frozen=True)
class DigestView(Definition):
    """A digest as editors see it: its definition and when it fires next."""

    next_run: datetime | None = None  # aware UTC; None when paused


# Definition fields stored as digest columns of the same name (tags live in digest_tag).
COLUMNS = tuple(f.name for f in fields(Definition) if f.name not in ("slug", "tags"))


@dataclass(frozen=True)
class DigestDetail(DigestView):
    """A digest with how many readers a send now would reach."""

    audience_size: int = 0


@dataclass(frozen=True)
class Preview:
    """The next issue as one reader (or any reader) would get it now."""

    subject: str
    format: str  # html or text
    body: str


PREVIEW_FORMATS = ("html", "text")


@dataclass(frozen=True)
class ArchivedIssue:
    """A sent issue as the public archive shows it: whole, not narrowed."""

    run_id: int
    digest: DigestInfo
    subject: str
    date: datetime
    posts: tuple[Post, ...]
    url: str


class Digests:
    """Every use case on digests, for the CLI, the web app and the scheduler."""

    def __init__(
        self,
        engine: sa.Engine,
        settings: Settings,
        templates: Environment,
        mailer: Mailer,
        mime: MimeComposer,
        clock: Clock,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.templates = templates
        self.mailer = mailer
        self.mime = mime
        self.clock = clock
        self.sender = Sender(engine, settings, mailer, mime, clock)
        self._composers: dict[int, Composer] = {}
        self._runs = Runs(engine, clock)

    # ------------------------------------------------------------------ definitions

    def _template_exists(self, name: str) -> bool:
        loader = self.templates.loader
        assert loader is not None
        found = set(loader.list_templates())
        return f"email/{name}.html" in found and f"email/{name}.txt" in found

    def _check(self, session: Session, definition: Definition) -> Definition:
        known = {t.slug for t in storage.all_tags(session)}
        return check(definition, known, self._template_exists)

    def _blank(self, slug: str) -> Definition:
        """What a new digest is before the editor says otherwise."""
        return Definition(
            slug=slug,
            name="",
            description="",
            tags=(),
            max_items=10,
            cron="0 7 * * *",
            timezone=self.settings.site.timezone,
            subject=DEFAULT_SUBJECT,
            template="digest",
            skip_if_empty=True,
            paused=False,
        )

    def create(self, slug: str, data: DigestInput) -> DigestView:
        """A new digest; InvalidInputError naming the field, or DuplicateError for a slug
        in use. Nothing is stored unless everything is right."""
        slug = check_slug(slug)
        if data.name is None:
            raise InvalidInputError("name", "is required")
        now = self.clock()
        with Session(self.engine) as session:
            definition = self._check(session, merge(self._blank(slug), data))
            digest = Digest(slug=slug, name=definition.name, schedule_from=now, updated_at=now)
            self._apply(digest, definition)
            storage.add_digest(session, digest)
            self._store_tags(session, digest, definition.tags)
            session.commit()
            return self._view(session, digest)

    def edit(self, slug: str, data: DigestInput) -> DigestView:
        now = self.clock()
        with Session(self.engine) as session:
            digest = self._digest(session, slug)
            current = self._definition(session, digest)
            definition = self._check(session, merge(current, data))
            if (definition.cron, definition.timezone) != (current.cron, current.timezone):
                digest.schedule_from = now  # a new schedule starts now, it does not catch up
            if current.paused and not definition.paused:
                digest.schedule_from = max(digest.schedule_from, now)
            self._apply(digest, definition)
            digest.updated_at = now
            self._store_tags(session, digest, definition.tags)
            session.commit()
            return self._view(session, digest)

    def pause(self, slug: str) -> DigestView:
        return self.edit(slug, DigestInput(paused=True))

    def resume(self, slug: str) -> DigestView:
        """Unpause; firings that came while paused are not sent afterwards."""
        return self.edit(slug, DigestInput(paused=False))

    def delete(self, slug: str) -> None:
        """Delete a digest with its runs, ledger and subscriptions."""
        with Session(self.engine) as session:
            storage.delete_digest(session, self._digest(session, slug))
            session.commit()

    def all(self) -> list[DigestView]:
        with Session(self.engine) as session:
            return [self._view(session, d) for d in storage.all_digests(session)]

    def get(self, slug: str) -> DigestView:
        with Session(self.engine) as session:
            return self._view(session, self._digest(session, slug))

    def detail(self, slug: str) -> DigestDetail:
        """The digest, when it fires next and how many readers a send now would reach."""
        view = self.get(slug)
        return DigestDetail(**asdict(view), audience_size=self.audience_size(slug))

    def audience_size(self, slug: str) -> int:
        """How many readers a send now would reach at this moment: active, unsuppressed
        subscribers of the digest who would get at least one post of the next issue (all of
        them when the issue is empty and the digest sends anyway; none when it is empty and
        skipped). The ledger a run writes may differ by who joins or leaves meanwhile."""
        now = self.clock()
        with Session(self.engine) as session:
            digest = self._digest(session, slug)
            assert digest.id is not None
            start = self._window_start(session, digest, 0, now)
            posts = self._window_posts(session, digest, start, now)
            if not posts:
                if digest.skip_if_empty:
                    return 0
                return storage.audience_count(session, digest.id, None)
            tags = {t.slug for p in posts for t in p.article.tags}
            return storage.audience_count(session, digest.id, tags)

    def _apply(self, digest: Digest, definition: Definition) -> None:
        for name in COLUMNS:
            setattr(digest, name, getattr(definition, name))

    def _store_tags(self, session: Session, digest: Digest, slugs: tuple[str, ...]) -> None:
        assert digest.id is not None
        found = storage.tags_by_slugs(session, list(slugs))
        storage.set_digest_tags(session, digest.id, [t.id for t in found.values() if t.id])

    def _digest(self, session: Session, slug: str) -> Digest:
        return need_digest(session, slug)

    def _tag_slugs(self, session: Session, digest: Digest) -> tuple[str, ...]:
        assert digest.id is not None
        return tuple(
            sorted(t.slug for t in storage.digest_tags(session, [digest.id]).get(digest.id, []))
        )

    def _definition(self, session: Session, digest: Digest) -> Definition:
        values = {name: getattr(digest, name) for name in COLUMNS}
        return Definition(slug=digest.slug, tags=self._tag_slugs(session, digest), **values)

    def _view(self, session: Session, digest: Digest) -> DigestView:
        d = self._definition(session, digest)
        next_run = None if d.paused else Schedule.parse(d.cron, d.timezone).next_after(self.clock())
        return DigestView(**asdict(d), next_run=next_run)

    # ------------------------------------------------------------------ composing

    def _info(self, digest: Digest) -> DigestInfo:
        return DigestInfo(digest.slug, digest.name, digest.description, digest.timezone)

    def issue_url(self, slug: str, run_id: int | None) -> str:
        return f"{self.settings.base_url}/digests/{slug}" + (f"/{run_id}" if run_id else "")

    def _composer(self, digest: Digest) -> Composer:
        return Composer(
            templates=self.templates,
            template=digest.template,
            subject=digest.subject,
            base_url=self.settings.base_url,
            site_title=self.settings.site.title,
            postal_address=self.settings.mail.postal_address,
            inline=self.mime.inline,
        )

    def _window_posts(
        self,
        session: Session,
        digest: Digest,
        start: datetime,
        end: datetime,
        tag_slugs: tuple[str, ...] | None = None,
    ) -> list[Post]:
        """The posts of the window; on the digest's stored tags, or on `tag_slugs` (a
        definition not saved yet)."""
        if tag_slugs is not None:
            tags = list(storage.tags_by_slugs(session, list(tag_slugs)).values())
        else:
            assert digest.id is not None
            tags = storage.digest_tags(session, [digest.id]).get(digest.id) or []
        tag_ids = [t.id for t in tags if t.id is not None] or None
        rows = storage.window_articles(session, start, end, tag_ids, digest.max_items)
        return [Post(article_id, view) for article_id, view in rows]

    def _window_start(
        self, session: Session, digest: Digest, run_id: int, end: datetime
    ) -> datetime:
        """Where the next window starts: the end of the previous composed run's window;
        for a digest's first issue, one schedule period before its first firing (a missed
        firing included, so its posts are not lost)."""
        assert digest.id is not None
        previous = storage.previous_window_end(session, digest.id, run_id)
        if previous is not None:
            return previous
        first = min(end, storage.first_run_time(session, digest.id) or end)
        return first - Schedule.parse(digest.cron, digest.timezone).period_before(first)

    def preview(self, slug: str, fmt: str = "html", subscriber: str | None = None) -> str:
        """The next issue as it would go out now, with real articles: the whole issue, or
        one subscriber's narrowed view (their greeting and links filled in). HTML, or text
        headed by its subject line."""
        issue = self.preview_issue(slug, fmt, subscriber)
        if issue.format == "text":
            return f"Subject: {issue.subject}\n\n{issue.body}"
        return issue.body

    def preview_issue(
        self,
        slug: str,
        fmt: str = "html",
        subscriber: str | None = None,
        draft: DigestInput | None = None,
    ) -> Preview:
        """The next issue's subject and body (`fmt`: html or text) as `preview` makes them.
        With `draft`, as the digest would be with those changes (checked like an edit,
        nothing stored); a slug not yet stored previews a new digest's draft.
        NotFoundError for an unknown digest or subscriber; InvalidInputError naming
        "format", a draft's field, or "subscriber" for an address that is not one or a
        subscriber who does not receive the digest."""
        if fmt not in PREVIEW_FORMATS:
            raise InvalidInputError("format", f"{fmt!r:.40} is not html or text", fmt)
        address = None
        if subscriber is not None:
            try:
                address = normalize_email(subscriber)
            except InvalidInputError as exc:
                raise InvalidInputError("subscriber", exc.reason, subscriber) from None
        now = self.clock()
        with Session(self.engine) as session:
            if draft is None:
                digest = self._digest(session, slug)
                start = self._window_start(session, digest, 0, now)
                posts = self._window_posts(session, digest, start, now)
            else:
                digest, posts = self._draft_posts(session, slug, draft, now)
            page = self.issue_url(slug, None)
            name, email, unsubscribe, prefs = "", "reader@example.org", page, page
            if address is not None:
                person = storage.subscriber_by_email(session, address)
                if person is None or person.id is None:
                    raise NotFoundError("subscriber", address)
                chosen = storage.subscriptions_of(session, person.id)
                if digest.id is None or digest.id not in chosen:
                    raise InvalidInputError("subscriber", f"{person.email} does not receive {slug}")
                posts = list(narrow(posts, chosen[digest.id]))
                name, email = person.name, person.email
                unsubscribe = links.unsubscribe_url(self.settings, person.id, person.link_key)
                prefs = links.preferences_url(self.settings, person.id, person.link_key)
            issue = Issue(self._info(digest), None, now, tuple(posts), self.issue_url(slug, None))
            bodies = self._composer(digest).bodies(issue, posts)
        text, html = compose.personalise(bodies, name, email, unsubscribe, prefs)
        return Preview(bodies.subject, fmt, text if fmt == "text" else html)

    def _draft_posts(
        self, session: Session, slug: str, draft: DigestInput, now: datetime
    ) -> tuple[Digest, list[Post]]:
        """A digest row as the draft would make it (never added to the session) and the
        posts its next issue would carry now."""
        stored = storage.digest_by_slug(session, check_slug(slug))
        current = self._definition(session, stored) if stored else self._blank(slug)
        if stored is None and draft.name is None:
            draft = replace(draft, name=slug)
        definition = self._check(session, merge(current, draft))
        shadow = Digest(id=stored.id if stored else None, slug=slug, name=definition.name)
        if stored is not None:
            shadow.schedule_from = stored.schedule_from
        self._apply(shadow, definition)
        if stored is not None:
            start = self._window_start(session, stored, 0, now)
        else:
            schedule = Schedule.parse(definition.cron, definition.timezone)
            start = now - schedule.period_before(now)
        return shadow, self._window_posts(session, shadow, start, now, definition.tags)

    async def send_test(self, slug: str, to: str) -> str:
        """Send the next issue, as it would go out now, to `to` (any address; its subject
        says it is a test). Returns the Message-ID. InvalidInputError("to") for an
        address that is not one."""
        try:
            address = normalize_email(to)
        except InvalidInputError as exc:
            raise InvalidInputError("to", exc.reason, to) from None
        now = self.clock()

        def letter() -> Letter:
            with Session(self.engine) as session:
                digest = self._digest(session, slug)
                start = self._window_start(session, digest, 0, now)
                posts = self._window_posts(session, digest, start, now)
                issue = Issue(
                    self._info(digest), None, now, tuple(posts), self.issue_url(slug, None)
                )
                bodies = self._composer(digest).bodies(issue, posts)
            page = f"{self.settings.base_url}/digests/{slug}"
            text, html = compose.personalise(bodies, "", address, page, page)
            return Letter(address, "", f"[Test] {bodies.subject}", text, html, inlined=True)

        built = await asyncio.to_thread(letter)
        envelope = self.mime.compose(built, now)
        await self.mailer.send(envelope)
        return envelope.message_id

    # ------------------------------------------------------------------ making and sending runs

    def send_now(self, slug: str) -> RunView:
        """A run now, outside the schedule; its window ends now. While a run of the digest
        is composing or sending, that run is the answer: a send-now clicked twice, or an
        API call retried after a timeout, sends one issue, not two."""
        with Session(self.engine) as session:
            digest_id = self._digest(session, slug).id
            assert digest_id is not None
        with Session(self.engine) as session:
            storage.lock_digest(session, digest_id)  # one send-now of a digest at a time
            under_way = storage.runs(session, digest_id, ACTIVE_RUNS, limit=1)
            if under_way and under_way[0].id is not None:
                session.rollback()
                return self.run(under_way[0].id)
            now = self.clock()
            run, _ = storage.add_run(
                session,
                DigestRun(
                    digest_id=digest_id, scheduled_for=now, kind=RunKind.manual, created_at=now
                ),
            )
            assert run.id is not None
            run_id = run.id
        self.compose(run_id)
        return self.run(run_id)

    def tick(self, now: datetime | None = None) -> list[int]:
        """The scheduler's work at `now`: for each unpaused digest, the latest firing not
        yet answered makes its run (once, however many schedulers tick), and is composed;
        a firing older than `[digests] catch_up_hours` is recorded as missed instead.
        Returns the ids of the runs this call created."""
        now = now or self.clock()
        catch_up = timedelta(hours=self.settings.digests.catch_up_hours) + ON_TIME
        created: list[int] = []
        with Session(self.engine) as session:
            digests = [d for d in storage.all_digests(session) if not d.paused]
            plans: list[tuple[int, datetime, bool]] = []
            for digest in digests:
                assert digest.id is not None
                schedule = Schedule.parse(digest.cron, digest.timezone)
                last = storage.latest_run(session, digest.id, RunKind.scheduled)
                since = max(
                    digest.schedule_from, last.scheduled_for if last else digest.schedule_from
                )
                nxt = schedule.next_after(since)
                if nxt is None or nxt > now:
                    continue  # the common case: nothing due
                # bound the walk: a firing older than this is missed whichever it is
                since = max(since, now - catch_up - timedelta(days=2))
                latest = schedule.latest_at_or_before(now, since) or nxt
                plans.append((digest.id, latest, now - latest <= catch_up))
        for digest_id, scheduled_for, on_time in plans:
            with Session(self.engine) as session:
                run = DigestRun(
                    digest_id=digest_id,
                    scheduled_for=scheduled_for,
                    kind=RunKind.scheduled,
                    created_at=now,
                )
                if not on_time:
                    run.status = RunStatus.missed
                    run.reason = (
                        f"nothing was running at {scheduled_for:%Y-%m-%d %H:%M} UTC, and that is "
                        f"more than [digests] catch_up_hours = "
                        f"{self.settings.digests.catch_up_hours} ago"
                    )
                run, new = storage.add_run(session, run)
                assert run.id is not None
                if new:
                    created.append(run.id)
                    log.info("digest run %s for %s (%s)", run.id, scheduled_for, run.status)
        for run_id in created:
            self.compose(run_id)
        return created

    def compose(self, run_id: int) -> None:
        """Fix the run's window and posts (once), then write its ledger: one row per active,
        unsuppressed subscriber of the digest, streamed in id order in batches, resumed
        where it stopped. A run with no posts and skip-if-empty is skipped."""
        with Session(self.engine) as session:
            run = storage.run_by_id(session, run_id)
            if run is None or run.status != RunStatus.composing:
                return
            digest = storage.digest_by_id(session, run.digest_id)
            assert digest is not None and digest.id is not None
            if run.window_end is None:
                end = run.scheduled_for
                # The windows of one digest are fixed one at a time, under the digest's
                # row lock taken first in a fresh transaction: two runs composed at once
                # (a send-now and a firing, two send-nows) would otherwise both start
                # where the last composed window ended, and mail the same posts twice.
                digest_id = digest.id  # read before the rollback expires the object
                session.rollback()
                storage.lock_digest(session, digest_id)
                start = min(self._window_start(session, digest, run_id, end), end)
                posts = self._window_posts(session, digest, start, end)
                issue = Issue(
                    self._info(digest),
                    run_id,
                    end,
                    tuple(posts),
                    self.issue_url(digest.slug, run_id),
                )
                subject = compose.subject_of(digest.subject, issue)
                # a send-now and a sender may compose the same run at once: the first to
                # fix the window writes the posts; the other finds them fixed
                if storage.fix_run_window(session, run_id, start, end, subject):
                    storage.set_run_articles(session, run_id, [p.id for p in posts])
                    if not posts and digest.skip_if_empty:
                        storage.set_run_status(
                            session,
                            run_id,
                            RunStatus.skipped,
                            "no new posts in the window (skip-if-empty)",
                            finished_at=self.clock(),
                            only_from=[RunStatus.composing],
                        )
                    session.commit()
                else:
                    session.rollback()
                session.expire_all()
                run = storage.run_by_id(session, run_id)
                if run is None or run.status != RunStatus.composing:
                    return
            posts = [Post(i, v) for i, v in storage.run_articles(session, run_id)]
            after = storage.last_ledger_subscriber(session, run_id)
            now = self.clock()
            while True:
                page = storage.audience_page(session, digest.id, after, LEDGER_BATCH)
                if not page:
                    break
                rows = []
                for reader in page:
                    mine = narrow(posts, reader.tags)
                    # an issue sent empty (send-if-empty) goes to everyone; otherwise a
                    # reader whose topics had no post is skipped
                    wanted = bool(mine) or not posts
                    rows.append(
                        {
                            "run_id": run_id,
                            "subscriber_id": reader.id,
                            "status": (
                                DeliveryStatus.queued if wanted else DeliveryStatus.skipped
                            ).value,
                            "segment": segment_key(mine),
                            "attempts": 0,
                            "last_error": "" if wanted else "no post on the chosen topics",
                            "updated_at": now,
                        }
                    )
                storage.add_deliveries(session, rows)
                session.commit()
                after = page[-1].id
            storage.ledger_written(session)
            storage.set_run_status(
                session, run_id, RunStatus.sending, only_from=[RunStatus.composing]
            )
            session.commit()

    def _builder(self, run_id: int) -> tuple[str, Build]:
        """The run's digest slug, and how the sender makes each recipient's message: the
        segment's message prebuilt once (rendered, inlined, encoded), with the
        recipient's parts filled in."""
        with Session(self.engine) as session:
            run = storage.run_by_id(session, run_id)
            assert run is not None
            digest = storage.digest_by_id(session, run.digest_id)
            assert digest is not None
            posts = {i: Post(i, v) for i, v in storage.run_articles(session, run_id)}
            issue = Issue(
                self._info(digest),
                run_id,
                run.scheduled_for,
                tuple(posts.values()),
                self.issue_url(digest.slug, run_id),
            )
            composer = self._composers.setdefault(run_id, self._composer(digest))
        prepared: dict[str, Prepared] = {}
        settings = self.settings

        def segment(key: str) -> Prepared:
            found = prepared.get(key)
            if found is None:
                mine = [posts[int(i)] for i in key.split(",") if i and int(i) in posts]
                bodies = composer.bodies(issue, mine)
                found = prepared[key] = self.mime.prepare(
                    bodies.subject, bodies.text, bodies.html, compose.MARKERS
                )
            return found

        def build(recipient: Recipient, message_id: str) -> Filled:
            sid, key = recipient.subscriber_id, recipient.link_key
            unsubscribe = links.unsubscribe_url(settings, sid, key)
            values = {
                compose.GREETING: compose.greeting(recipient.name),
                compose.EMAIL: recipient.email,
                compose.UNSUBSCRIBE: unsubscribe,
                compose.PREFERENCES: links.preferences_url(settings, sid, key),
            }
            headers = [
                ("Date", format_datetime(self.clock())),
                ("Message-ID", message_id),
                *links.unsubscribe_headers(settings, recipient.email, unsubscribe).items(),
            ]
            return segment(recipient.segment).fill(recipient.email, recipient.name, headers, values)

        return digest.slug, build

    def renders(self, run_id: int) -> int:
        """Bodies rendered for a run in this process (one per segment)."""
        composer = self._composers.get(run_id)
        return composer.renders if composer else 0

    async def deliver(
        self, run_id: int, on_progress: Callable[[Progress], None] | None = None
    ) -> Progress:
        """Compose the run if that is not finished, then send it until it is done, paused
        or cancelled."""
        await asyncio.to_thread(self.compose, run_id)
        slug, build = await asyncio.to_thread(self._builder, run_id)
        return await self.sender.deliver(run_id, build, on_progress, slug)

    def unfinished_runs(self) -> list[int]:
        """Runs a sender should take up (composing or sending): after a crash, these
        resume without anyone asking."""
        with Session(self.engine) as session:
            return [r.id for r in storage.runs_in(session, ACTIVE_RUNS) if r.id is not None]

    # ------------------------------------------------------------------ runs (runs.py)

    def runs(self, slug: str | None = None, limit: int = 50) -> list[RunView]:
        return self._runs.runs(slug, limit)

    def run(self, run_id: int) -> RunView:
        return self._runs.run(run_id)

    def progress(self, run_id: int) -> RunProgress:
        return self._runs.progress(run_id)

    def run_page(
        self,
        slug: str | None = None,
        status: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> RunPage:
        return self._runs.run_page(slug, status, limit, cursor)

    def pause_run(self, run_id: int, reason: str = "paused by an editor") -> RunView:
        return self._runs.pause_run(run_id, reason)

    def resume_run(self, run_id: int) -> RunView:
        return self._runs.resume_run(run_id)

    def cancel_run(self, run_id: int) -> RunView:
        return self._runs.cancel_run(run_id)

    def ledger(self, run_id: int) -> list[Delivery]:
        return self._runs.ledger(run_id)

    # ------------------------------------------------------------------ archive

    def archive(self, slug: str, limit: int = 100) -> tuple[DigestView, list[ArchivedIssue]]:
        """A digest and its sent issues, newest first."""
        with Session(self.engine) as session:
            digest = self._digest(session, slug)
            assert digest.id is not None
            found = storage.runs(session, digest.id, [RunStatus.sent, RunStatus.sending], limit)
            issues = [self._archived(session, digest, r) for r in found]
            return self._view(session, digest), issues

    def archived_issue(self, slug: str, run_id: int) -> ArchivedIssue:
        with Session(self.engine) as session:
            digest = self._digest(session, slug)
            run = storage.run_by_id(session, run_id)
            if (
                run is None
                or run.digest_id != digest.id
                or run.status not in (RunStatus.sent, RunStatus.sending)
            ):
                raise NotFoundError("issue", f"{slug}/{run_id}")
            return self._archived(session, digest, run)

    def _archived(self, session: Session, digest: Digest, run: DigestRun) -> ArchivedIssue:
        # a post withdrawn (unpublished) since leaves the archive as it leaves the site
        posts = tuple(
            Post(i, v)
            for i, v in storage.run_articles(session, run.id or 0)
            if v.status == ArticleStatus.published
        )
        return ArchivedIssue(
            run_id=run.id or 0,
            digest=self._info(digest),
            subject=run.subject,
            date=run.scheduled_for,
            posts=posts,
            url=self.issue_url(digest.slug, run.id),
        )
