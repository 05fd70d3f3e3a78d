"""Storing subscriber records in batches: what CSV import and `subscribers add` share.

A record is a mapping of column names (email, name, status, digests, tags, created_at) to
text. Bad records are reported by line with the reason and the rest still stored; a
suppressed address is never brought back; an active subscriber is never sent through
confirmation again.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, tzinfo

import sqlalchemy as sa
from sqlmodel import Session

from newsletter import storage
from newsletter.dates import parse_datetime
from newsletter.errors import InvalidInputError
from newsletter.models import DEFAULT_DIGEST, SUPPRESSING, Subscriber, SubscriberStatus
from newsletter.storage import Choices
from newsletter.subscribers.addresses import clean_name, normalize_email

BATCH = 1000

Record = Mapping[str, str | None]


@dataclass
class RowError:
    line: int
    reason: str
    field: str | None = None

    def __str__(self) -> str:
        return f"{self.field}: {self.reason}" if self.field else self.reason


@dataclass
class BulkReport:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    suppressed: int = 0  # rows skipped because the address must not be mailed
    errors: list[RowError] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"{self.created} created, {self.updated} updated, {self.unchanged} unchanged, "
            f"{self.suppressed} skipped as suppressed, {len(self.errors)} failed"
        )


@dataclass(frozen=True)
class Row:
    line: int
    email: str
    name: str
    status: SubscriberStatus
    digests: tuple[int, ...]  # empty: not given (new subscribers get the default digest)
    tags: frozenset[str] | None  # None: not given (existing subscribers keep theirs)
    created_at: datetime | None


def split_list(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(";") if v.strip()]


class _Parser:
    def __init__(self, session: Session, zone: tzinfo) -> None:
        digests = storage.all_digests(session)
        self.digests = {d.slug: d.id or 0 for d in digests}
        default = self.digests.get(DEFAULT_DIGEST) or next(iter(self.digests.values()), None)
        self.default = (default,) if default is not None else ()
        self.tags = {t.slug for t in storage.all_tags(session)}
        self.zone = zone

    def row(self, line: int, record: Record) -> Row:
        email = normalize_email(record.get("email") or "")
        raw_status = (record.get("status") or "active").strip().lower()
        try:
            status = SubscriberStatus(raw_status)
        except ValueError:
            allowed = ", ".join(s.value for s in SubscriberStatus)
            raise InvalidInputError(
                "status", f"{raw_status!r} is not one of {allowed}", raw_status
            ) from None
        digests = split_list(record.get("digests"))
        unknown = [d for d in digests if d not in self.digests]
        if unknown:
            raise InvalidInputError("digests", f"no digest {unknown[0]!r}", unknown[0])
        tags = split_list(record.get("tags"))
        bad = [t for t in tags if t not in self.tags]
        if bad:
            raise InvalidInputError("tags", f"no tag {bad[0]!r}", bad[0])
        created_at = parse_datetime(record.get("created_at") or None, "created_at", self.zone)
        return Row(
            line=line,
            email=email,
            name=clean_name(from_spreadsheet(record.get("name") or "")),
            status=status,
            digests=tuple(self.digests[d] for d in digests),
            tags=frozenset(tags) if (record.get("tags") or "").strip() else None,
            created_at=created_at,
        )


def import_rows(
    engine: sa.Engine,
    records: Iterable[tuple[int, Record]] | Iterable[Record],
    now: datetime,
    zone: tzinfo,
) -> BulkReport:
    """Store (line, record) pairs or bare records, BATCH at a time. `zone` is what a
    created_at without an offset means (the site's time zone)."""
    report = BulkReport()
    with Session(engine) as session:
        parser = _Parser(session, zone)
        batch: list[Row] = []
        for number, item in enumerate(records, start=2):
            line, record = item if isinstance(item, tuple) else (number, item)
            if None in record:  # more fields than the header has
                report.errors.append(RowError(line, "more fields than the header names"))
                continue
            try:
                batch.append(parser.row(line, record))
            except InvalidInputError as exc:
                report.errors.append(RowError(line, exc.reason, exc.field))
            if len(batch) >= BATCH:
                _store(session, batch, report, now, parser.default)
                batch = []
        _store(session, batch, report, now, parser.default)
    return report


def _store(
    session: Session, rows: list[Row], report: BulkReport, now: datetime, default: tuple[int, ...]
) -> None:
    """Write one batch: a few queries for the whole batch, not a few per row."""
    if not rows:
        return
    emails = [r.email for r in rows]
    existing = storage.subscribers_by_emails(session, emails)
    suppressed = set(storage.suppressions_for(session, emails))
    current = storage.subscriptions_of_many(session, [s.id or 0 for s in existing.values()])
    new: dict[str, Row] = {}
    for row in rows:
        if row.email in suppressed:
            report.suppressed += 1
            continue
        if row.status in SUPPRESSING:
            storage.suppress(session, row.email, row.status, f"CSV import line {row.line}", now)
            suppressed.add(row.email)
        subscriber = existing.get(row.email)
        if subscriber is None:
            if row.email not in new:
                report.created += 1
            new[row.email] = row  # a later line for the same address wins
            continue
        mine = current.get(subscriber.id or 0, {})
        if _update(session, subscriber, row, mine, now, default):
            report.updated += 1
        else:
            report.unchanged += 1
    storage.insert_subscribers(
        session,
        [
            {
                "email": r.email,
                "name": r.name,
                "status": r.status.value,
                "created_at": r.created_at or now,
                "updated_at": now,
                "confirmed_at": now if r.status == SubscriberStatus.active else None,
                "link_key": secrets.token_urlsafe(12),
            }
            for r in new.values()
        ],
        {
            email: {digest: row.tags or frozenset() for digest in row.digests or default}
            for email, row in new.items()
        },
    )
    session.commit()
    session.expunge_all()


def _update(
    session: Session,
    subscriber: Subscriber,
    row: Row,
    current: Choices,
    now: datetime,
    default: tuple[int, ...],
) -> bool:
    """Bring an existing subscriber in line with the row; False when nothing changes.
    An active subscriber stays active (no new confirmation); pending becomes active only
    when the file says so; suppressing statuses always win."""
    status = subscriber.status
    if row.status in SUPPRESSING or (
        row.status == SubscriberStatus.active and status == SubscriberStatus.pending
    ):
        status = row.status
    # A column left out or empty keeps what the subscriber chose.
    tags = row.tags if row.tags is not None else next(iter(current.values()), frozenset())
    wanted = {d: tags for d in row.digests or tuple(current) or default}
    name = row.name or subscriber.name
    if (status, name, current) == (subscriber.status, subscriber.name, wanted):
        return False
    subscriber.status, subscriber.name, subscriber.updated_at = status, name, now
    if status == SubscriberStatus.active and subscriber.confirmed_at is None:
        subscriber.confirmed_at = now
    if status in SUPPRESSING:
        subscriber.confirm_nonce = None
    if current != wanted:
        storage.set_subscriptions(session, subscriber.id or 0, wanted)
    return True


# A cell starting with one of these is a formula to Excel, LibreOffice and Google Sheets:
# a name a reader typed at sign-up must not become one in an editor's spreadsheet.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(text: str) -> str:
    """`text` as a CSV cell that no spreadsheet runs: an apostrophe before a formula start
    (spreadsheets show the text without it; `from_spreadsheet` takes it off on import)."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def from_spreadsheet(text: str) -> str:
    """The text `spreadsheet_safe` wrote, as it was."""
    return text[1:] if text.startswith("'") and text[1:].startswith(FORMULA_STARTS) else text


def export_rows(engine: sa.Engine, status: str | None = None) -> Iterator[tuple[str, ...]]:
    """Every subscriber (or those with `status`) as the columns import reads, by id."""
    with Session(engine) as session:
        slugs = {d.id: d.slug for d in storage.all_digests(session)}
        for subscriber, subscriptions in storage.subscribers(session, status):
            yield export_row(subscriber, subscriptions, slugs)


def export_row(
    subscriber: Subscriber, subscriptions: Choices, slugs: Mapping[int | None, str]
) -> tuple[str, ...]:
    """One subscriber as the columns import reads (`slugs`: digest id -> slug)."""
    tags = sorted({t for v in subscriptions.values() for t in v})
    return (
        subscriber.email,
        spreadsheet_safe(subscriber.name),
        subscriber.status,
        ";".join(sorted(slugs[d] for d in subscriptions if d in slugs)),
        ";".join(tags),
        subscriber.created_at.isoformat(),
    )
