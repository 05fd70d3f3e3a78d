"""What the storage modules share."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, SQLModel, col

from newsletter.errors import DuplicateError


def insert_unique(session: Session, row: SQLModel, kind: str, key: str) -> None:
    """Insert `row`; DuplicateError(kind, key), with the transaction rolled back, when a
    unique constraint refuses it (another writer may have stored it first)."""
    session.add(row)
    try:
        session.flush()
    except sa.exc.IntegrityError:
        session.rollback()
        raise DuplicateError(kind, key) from None


def claim_rows(
    session: Session,
    table: type[SQLModel],
    due: sa.ColumnElement[bool],
    values: Mapping[str, Any],
    limit: int,
    returning: Sequence[Any] = (),
    ordered: bool = True,
) -> Sequence[sa.Row[Any]]:
    """Set `values` on up to `limit` rows of `table` matching `due` (oldest id first when
    `ordered`), in one
    statement, and return their id (and the `returning` columns). On PostgreSQL the rows
    are picked FOR UPDATE SKIP LOCKED, so concurrent workers take disjoint rows; SQLite
    serialises writers, and `due` is checked again in the UPDATE for both."""
    key = col(table.id)  # type: ignore[attr-defined]
    pick = sa.select(key).where(due).limit(limit)
    if ordered:
        # oldest first; a ledger claim passes ordered=False: sorting a million due rows
        # for every batch costs more than the order is worth (an index on the state
        # gives them in near id order anyway)
        pick = pick.order_by(key)
    if session.get_bind().dialect.name == "postgresql":
        # Picked in a materialised CTE and joined: as `id IN (subquery)` PostgreSQL may
        # run the locking subquery once per row it looks at, which turns a claim over a
        # large ledger quadratic (seconds per batch at 20,000 rows).
        picked = pick.with_for_update(skip_locked=True).cte("picked").prefix_with("MATERIALIZED")
        return session.execute(
            sa.update(table)
            .where(key == picked.c.id, due)
            .values(**values)
            .returning(key, *returning)
        ).all()
    return session.execute(
        sa.update(table)
        .where(key.in_(pick.scalar_subquery()), due)
        .values(**values)
        .returning(key, *returning)
    ).all()
