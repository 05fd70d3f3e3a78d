"""The one reading of dates given as text (imports of articles and of subscribers).

Rule: an ISO 8601 date or date-time; one without an offset means the publication's own time
zone (`[site] timezone`), because that is the clock the people who wrote the file used.
Results are aware UTC datetimes between the years 1970 and 9000, the range both databases and
every feed format carry.
"""

from __future__ import annotations

import reprlib
from datetime import UTC, date, datetime, tzinfo

from newsletter.errors import InvalidInputError

EXAMPLE = "2024-05-01T09:30:00+07:00"
_SHORT = reprlib.Repr()
_SHORT.maxlevel, _SHORT.maxstring, _SHORT.maxother = 2, 60, 60


def _shown(value: object) -> str:
    """A short repr, bounded before it is built (a nested value never is formatted whole)."""
    return _SHORT.repr(value)


def parse_datetime(value: object, field: str, zone: tzinfo) -> datetime | None:
    """`value` (text, or a date or datetime a YAML parser made) as an aware UTC datetime;
    None for None or empty text. InvalidInputError names `field` and the value otherwise."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, date):  # YAML front matter turns 2024-05-01 into a date
        parsed = datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        text = value.strip()
        try:
            parsed = datetime.fromisoformat(text.replace(" ", "T", 1))
        except ValueError:
            raise InvalidInputError(
                field, f"{_shown(value)} is not an ISO 8601 date such as {EXAMPLE}", value
            ) from None
    else:
        raise InvalidInputError(
            field, f"expected an ISO 8601 date string, got {_shown(value)}", value
        )
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=zone)
    try:
        result = parsed.astimezone(UTC)
    except (OverflowError, ValueError):
        result = datetime.min.replace(tzinfo=UTC)
    if not 1970 <= result.year <= 9000:
        raise InvalidInputError(field, f"{_shown(value)} is outside the years 1970 to 9000", value)
    return result
