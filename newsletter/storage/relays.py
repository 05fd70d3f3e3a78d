"""Send windows of each relay, shared by every worker: a reservation is one conditional
UPDATE, so two workers can never both take the last messages of a window."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col

from newsletter.models import RelayUsage


def reserve(
    session: Session, relay: str, period: str, window_start: datetime, want: int, limit: int
) -> bool:
    """Take `want` (at most `limit`) sends from the relay's current window of `period`
    starting at `window_start`; False when the window has not that many left."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    session.execute(
        insert(RelayUsage)
        .values(relay=relay, period=period, window_start=window_start, used=0)
        .on_conflict_do_nothing()
    )
    same = col(RelayUsage.window_start) == window_start
    result = session.execute(
        sa.update(RelayUsage)
        .where(
            col(RelayUsage.relay) == relay,
            col(RelayUsage.period) == period,
            sa.or_(~same, col(RelayUsage.used) + want <= limit),
        )
        .values(
            used=sa.case((same, col(RelayUsage.used) + want), else_=want),
            window_start=window_start,
        )
    )
    return int(getattr(result, "rowcount", 0)) == 1
