"""Subscribers in and out as CSV: email, name, status, digests, tags, created_at.

Import streams the file in batches (constant memory for any size), reports each bad row by
line with the reason, never brings back a suppressed address and never sends an active
subscriber through confirmation again. Export writes what import reads.
"""

from __future__ import annotations

import csv
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TextIO

import sqlalchemy as sa
from sqlmodel import Session

from newsletter import storage
from newsletter.errors import InvalidInputError, SourceError
from newsletter.models import SUPPRESSING, Subscriber, SubscriberStatus, Subscription
from newsletter.subscribers import DEFAULT_DIGEST, normalize_email
from newsletter.text import plain_text

COLUMNS = ("email", "name", "status", "digests", "tags", "created_at")
BATCH = 1000


@dataclass
class RowError:
    line: int
    reason: str


@dataclass
class CsvReport:
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
    tags: str | None  # None: not given (existing subscribers keep theirs)
    created_at: datetime | None


def _split(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(";") if v.strip()]


class _Parser:
    def __init__(self, session: Session) -> None:
        digests = storage.all_digests(session)
        if not digests:
            digests = [storage.ensure_digest(session, DEFAULT_DIGEST, "Newsletter")]
            session.commit()
        self.digests = {d.slug: d.id or 0 for d in digests}
        self.default = (digests[0].id or 0,)
        self.tags = {t.slug for t in storage.all_tags(session)}

    def row(self, line: int, record: dict[str, str | None]) -> Row:
        try:
            email = normalize_email(record.get("email") or "")
        except InvalidInputError as exc:
            raise InvalidInputError(str(exc)) from None
        raw_status = (record.get("status") or "active").strip().lower()
        try:
            status = SubscriberStatus(raw_status)
        except ValueError:
            allowed = ", ".join(s.value for s in SubscriberStatus)
            raise InvalidInputError(f"status: {raw_status!r} is not one of {allowed}") from None
        digests = _split(record.get("digests"))
        unknown = [d for d in digests if d not in self.digests]
        if unknown:
            raise InvalidInputError(f"digests: no digest {unknown[0]!r}")
        tags = _split(record.get("tags"))
        bad = [t for t in tags if t not in self.tags]
        if bad:
            raise InvalidInputError(f"tags: no tag {bad[0]!r}")
        created_at = None
        if (record.get("created_at") or "").strip():
            text = (record.get("created_at") or "").strip()
            try:
                created_at = datetime.fromisoformat(text.replace(" ", "T", 1))
            except ValueError:
                raise InvalidInputError(f"created_at: {text!r} is not an ISO 8601 date") from None
            if created_at.tzinfo is None:
                created_at = created_at.replace(tzinfo=UTC)
            if not 1970 <= created_at.year <= 9000:
                raise InvalidInputError(f"created_at: {text!r} is outside the years 1970 to 9000")
        return Row(
            line=line,
            email=email,
            name=plain_text(record.get("name") or "")[:300],
            status=status,
            digests=tuple(self.digests[d] for d in digests),
            tags=" ".join(sorted(set(tags))) if (record.get("tags") or "").strip() else None,
            created_at=created_at,
        )


def import_csv(engine: sa.Engine, stream: TextIO, now: datetime) -> CsvReport:
    """Import subscribers from CSV text. Raises SourceError for a missing or wrong header."""
    reader = csv.DictReader(stream)
    try:
        header = reader.fieldnames or []
    except UnicodeDecodeError:
        raise SourceError(
            "the file is not UTF-8 text; save it as UTF-8 and import it again"
        ) from None
    except csv.Error as exc:
        raise SourceError(f"the header row is not readable as CSV: {exc}") from None
    if "email" not in header:
        raise SourceError("the CSV needs a header row with at least an 'email' column")
    unknown = [c for c in header if c not in COLUMNS]
    if unknown:
        raise SourceError(f"unknown column {unknown[0]!r}; allowed: " + ", ".join(COLUMNS))
    return import_rows(engine, ((reader.line_num, r) for r in reader), now)


def import_rows(
    engine: sa.Engine,
    records: Iterable[tuple[int, dict[str, str | None]]] | Iterable[dict[str, str | None]],
    now: datetime,
) -> CsvReport:
    """Import (line, record) pairs or bare records, BATCH at a time."""
    report = CsvReport()
    with Session(engine) as session:
        parser = _Parser(session)
        batch: list[Row] = []
        for number, item in enumerate(_guarded(records), start=2):
            line, record = item if isinstance(item, tuple) else (number, item)
            if None in record:  # more fields than the header has
                report.errors.append(RowError(line, "more fields than the header names"))
                continue
            try:
                batch.append(parser.row(line, record))
            except InvalidInputError as exc:
                report.errors.append(RowError(line, str(exc)))
            if len(batch) >= BATCH:
                _store(session, batch, report, now, parser.default)
                batch = []
        _store(session, batch, report, now, parser.default)
    return report


def _guarded(records: Iterable[Any]) -> Iterator[Any]:
    """The records, with a broken file turned into a SourceError that says where."""
    line = 1
    iterator = iter(records)
    while True:
        try:
            item = next(iterator)
        except StopIteration:
            return
        except UnicodeDecodeError:
            raise SourceError(
                f"after line {line}: the file is not UTF-8 text; save it as UTF-8 and import "
                "it again (the rows before this line were imported)"
            ) from None
        except csv.Error as exc:
            raise SourceError(
                f"after line {line}: not readable as CSV: {exc} (the rows before were imported)"
            ) from None
        line = item[0] if isinstance(item, tuple) else line + 1
        yield item


def _store(
    session: Session, rows: list[Row], report: CsvReport, now: datetime, default: tuple[int, ...]
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
    if new:
        session.execute(
            sa.insert(Subscriber),
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
        )
        ids = storage.subscriber_ids(session, list(new))
        session.execute(
            sa.insert(Subscription),
            [
                {"subscriber_id": ids[email], "digest_id": digest, "tags": row.tags or ""}
                for email, row in new.items()
                for digest in row.digests or default
            ],
        )
    session.commit()
    session.expunge_all()


def _update(
    session: Session,
    subscriber: Subscriber,
    row: Row,
    current: dict[int, str],
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
    tags = row.tags if row.tags is not None else next(iter(current.values()), "")
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


def export_csv(engine: sa.Engine, stream: TextIO, status: str | None = None) -> int:
    """Write every subscriber (or those with `status`) as CSV; returns the row count."""
    writer = csv.writer(stream)
    writer.writerow(COLUMNS)
    count = 0
    for row in rows(engine, status):
        writer.writerow(row)
        count += 1
    return count


def rows(engine: sa.Engine, status: str | None = None) -> Iterator[tuple[str, ...]]:
    with Session(engine) as session:
        slugs = {d.id: d.slug for d in storage.all_digests(session)}
        for subscriber, subscriptions in storage.subscribers(session, status):
            tags = sorted({t for v in subscriptions.values() for t in v.split()})
            yield (
                subscriber.email,
                subscriber.name,
                subscriber.status,
                ";".join(sorted(slugs[d] for d in subscriptions if d in slugs)),
                ";".join(tags),
                subscriber.created_at.isoformat(),
            )
