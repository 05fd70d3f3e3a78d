"""When a digest fires (pure: the schedule and the moments come in).

A schedule is a five-field cron expression read on the wall clock of an IANA time zone.
Firings are found on the wall clock first and only then turned into instants, so daylight
saving neither skips nor doubles one: a wall time that does not exist (the spring-forward
gap) fires at the same offset as just before the change (02:30 becomes 03:30), and a wall
time that happens twice (fall-back) fires the first time only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.cron import CronTrigger

from newsletter.errors import InvalidInputError

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HHMM = re.compile(r"([01]?\d|2[0-3]):([0-5]\d)")
_SEARCH_LIMIT = 100_000  # firings looked at before giving up (a cron that never fires)


def zone(name: str) -> ZoneInfo:
    """The IANA zone `name`; InvalidInputError("timezone") otherwise."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a name too long for a path
        raise InvalidInputError(
            "timezone", f"{name!r} is not an IANA time zone such as 'Asia/Jakarta'", name
        ) from None


def _hhmm(value: str, field: str) -> tuple[int, int]:
    match = _HHMM.fullmatch(value.strip())
    if not match:
        raise InvalidInputError(field, f"{value!r} is not a time of day such as 07:30", value)
    return int(match.group(1)), int(match.group(2))


def daily(at: str) -> str:
    hour, minute = _hhmm(at, "daily")
    return f"{minute} {hour} * * *"


def weekly(day: str, at: str) -> str:
    key = day.strip().lower()[:3]
    if key not in WEEKDAYS:
        raise InvalidInputError("weekly", f"{day!r} is not a weekday such as 'mon'", day)
    hour, minute = _hhmm(at, "weekly")
    return f"{minute} {hour} * * {key}"


def monthly(day: int, at: str) -> str:
    if not 1 <= day <= 28:
        # days 29 to 31 do not come every month: the digest would skip months
        raise InvalidInputError("monthly", f"day {day} is not from 1 to 28", day)
    hour, minute = _hhmm(at, "monthly")
    return f"{minute} {hour} {day} * *"


WEEKDAY_NAMES = dict(
    zip(
        WEEKDAYS,
        ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
        strict=True,
    )
)
# the expressions daily, weekly and monthly write
_DAILY = re.compile(r"(\d{1,2}) (\d{1,2}) \* \* \*")
_WEEKLY = re.compile(r"(\d{1,2}) (\d{1,2}) \* \* (mon|tue|wed|thu|fri|sat|sun)")
_MONTHLY = re.compile(r"(\d{1,2}) (\d{1,2}) (\d{1,2}) \* \*")


@dataclass(frozen=True)
class Shape:
    """A cron expression of a shape daily, weekly or monthly write, read back."""

    repeat: str  # daily | weekly | monthly
    at: str  # HH:MM
    weekday: str = ""  # mon to sun, when weekly
    day: str = ""  # the day of the month as the expression writes it, when monthly


def shape_of(cron: str) -> Shape | None:
    """What daily, weekly or monthly would have made `cron` from; None for another shape
    (a monthly day is not checked here: 29 to 31 read back too)."""
    if m := _DAILY.fullmatch(cron):
        return Shape("daily", _wall_time(m[2], m[1]))
    if m := _WEEKLY.fullmatch(cron):
        return Shape("weekly", _wall_time(m[2], m[1]), weekday=m[3])
    if m := _MONTHLY.fullmatch(cron):
        return Shape("monthly", _wall_time(m[2], m[1]), day=m[3])
    return None


def _wall_time(hour: str, minute: str) -> str:
    return f"{int(hour):02d}:{int(minute):02d}"


def in_words(cron: str) -> str:
    """A schedule the way an editor says it, for the shapes the form writes; else the cron."""
    shape = shape_of(cron)
    if shape is None:
        return f"cron: {cron}"
    if shape.repeat == "daily":
        return f"Every day at {shape.at}"
    if shape.repeat == "weekly":
        return f"Every {WEEKDAY_NAMES[shape.weekday]} at {shape.at}"
    return f"Every month on day {int(shape.day)} at {shape.at}"


@dataclass(frozen=True)
class Schedule:
    cron: str
    zone: ZoneInfo

    @classmethod
    def parse(cls, cron: str, timezone: str) -> Schedule:
        """InvalidInputError naming "cron" or "timezone" when either is wrong."""
        tz = zone(timezone)
        text = " ".join(cron.split())
        try:
            CronTrigger.from_crontab(text, timezone=UTC)
        except ValueError as exc:
            raise InvalidInputError(
                "cron",
                f"{cron!r} is not a cron expression (minute hour day month weekday): {exc}",
                cron,
            ) from None
        schedule = cls(text, tz)
        if schedule.next_after(datetime(2000, 1, 1, tzinfo=UTC)) is None:
            raise InvalidInputError("cron", f"{cron!r} never fires", cron)
        return schedule

    def _wall_trigger(self) -> CronTrigger:
        # The trigger runs on naive wall-clock times dressed as UTC: no zone rules apply.
        return CronTrigger.from_crontab(self.cron, timezone=UTC)

    def _instant(self, wall: datetime) -> datetime:
        """The moment a wall-clock time of the zone means (fold=0: the first of two, and in
        a gap the offset from before the change)."""
        return wall.replace(tzinfo=self.zone, fold=0).astimezone(UTC)

    def _wall(self, instant: datetime) -> datetime:
        return instant.astimezone(self.zone).replace(tzinfo=UTC)

    def next_after(self, instant: datetime) -> datetime | None:
        """The first firing strictly after `instant` (aware), as an aware UTC datetime."""
        trigger = self._wall_trigger()
        wall = self._wall(instant)
        for _ in range(_SEARCH_LIMIT):
            candidate = trigger.get_next_fire_time(None, wall + timedelta(seconds=1))
            if candidate is None:
                return None
            moment = self._instant(candidate.replace(tzinfo=None))
            if moment > instant:
                return moment
            wall = candidate
        return None

    def firings(self, start: datetime, end: datetime) -> list[datetime]:
        """Every firing in (start, end]."""
        found: list[datetime] = []
        moment = self.next_after(start)
        while moment is not None and moment <= end and len(found) < _SEARCH_LIMIT:
            found.append(moment)
            moment = self.next_after(moment)
        return found

    def latest_at_or_before(self, instant: datetime, since: datetime) -> datetime | None:
        """The last firing in (since, instant], or None."""
        found = None
        moment = self.next_after(since)
        while moment is not None and moment <= instant:
            found = moment
            moment = self.next_after(moment)
        return found

    def period_before(self, instant: datetime) -> timedelta:
        """The span between the two firings at or before `instant` (a day for a daily
        digest, a week for a weekly one, a month for a monthly one): how far a digest's
        first issue looks back."""
        for span in (
            timedelta(hours=2),
            timedelta(days=2),
            timedelta(days=40),
            timedelta(days=400),
        ):
            firings = self.firings(instant - span, instant)
            if len(firings) >= 2:
                return firings[-1] - firings[-2]
        upcoming = self.next_after(instant)
        after = self.next_after(upcoming) if upcoming else None
        if upcoming and after:
            return after - upcoming
        return timedelta(days=1)

    def describe(self) -> str:
        return f"{self.cron} ({self.zone.key})"
