"""What the storage modules share."""

from __future__ import annotations

import sqlalchemy as sa
from sqlmodel import Session, SQLModel

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
