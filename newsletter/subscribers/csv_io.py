"""Subscribers in and out as CSV: email, name, status, digests, tags, created_at.

Import streams the file in batches (constant memory for any size) through
newsletter.subscribers.bulk; export writes what import reads.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from datetime import datetime, tzinfo
from typing import Any, TextIO

import sqlalchemy as sa

from newsletter.errors import SourceError
from newsletter.subscribers.bulk import BulkReport, export_rows, import_rows

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
