"""Subscribers in and out as CSV: email, name, status, digests, tags, created_at.

Import streams the file in batches (constant memory for any size) through
newsletter.subscribers.bulk; export writes what import reads.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from datetime import datetime, tzinfo
from typing import Any, TextIO

import sqlalchemy as sa
from sqlmodel import Session

from newsletter import storage
from newsletter.errors import SourceError
from newsletter.subscribers.bulk import BulkReport, export_row, export_rows, import_rows

COLUMNS = ("email", "name", "status", "digests", "tags", "created_at")


def import_csv(engine: sa.Engine, stream: TextIO, now: datetime, zone: tzinfo) -> BulkReport:
    """Import subscribers from CSV text; a created_at without an offset is in `zone` (the
    site's time zone). Raises SourceError for a missing or wrong header or a file that is
    not UTF-8 CSV (rows before the fault are kept)."""
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
    return import_rows(engine, _guarded((reader.line_num, r) for r in reader), now, zone)


def import_csv_bytes(engine: sa.Engine, data: bytes, now: datetime, zone: tzinfo) -> BulkReport:
    """`import_csv` for a file that arrived whole (an upload, a request body): UTF-8, with
    or without a byte-order mark. SourceError when it is not UTF-8 (then nothing is
    stored: the whole file is decoded first) or not such a CSV file (as import_csv)."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SourceError(
            f"the file is not UTF-8 text (byte {exc.start + 1} is not); save it as UTF-8 and "
            "import it again"
        ) from None
    if not text.strip():
        raise SourceError("the file is empty; it needs a header row with an 'email' column")
    return import_csv(engine, io.StringIO(text, newline=""), now, zone)


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
        line = item[0]
        yield item


def export_csv(engine: sa.Engine, stream: TextIO, status: str | None = None) -> int:
    """Write every subscriber (or those with `status`) as CSV; returns the row count."""
    writer = csv.writer(stream)
    writer.writerow(COLUMNS)
    count = 0
    for row in export_rows(engine, status):
        writer.writerow(row)
        count += 1
    return count


def csv_chunks(engine: sa.Engine, status: str | None = None, batch: int = 1000) -> Iterator[str]:
    """What export_csv writes, as pieces of text of `batch` subscribers each. Every piece
    reads in its own short transaction, so a response can stream them from any thread."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(COLUMNS)
    after = 0
    while True:
        with Session(engine) as session:
            slugs = {d.id: d.slug for d in storage.all_digests(session)}
            page = storage.subscriber_page(session, after, batch, status)
            choices = storage.subscriptions_of_many(session, [s.id or 0 for s in page])
            for subscriber in page:
                writer.writerow(export_row(subscriber, choices.get(subscriber.id or 0, {}), slugs))
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        if len(page) < batch:
            return
        after = page[-1].id or 0
