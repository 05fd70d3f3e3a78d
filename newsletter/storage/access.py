"""API tokens and editors' accounts."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session, col, select

from newsletter.models import ApiToken, Editor


def add_token(session: Session, token: ApiToken) -> None:
    session.add(token)
    session.flush()


def token_by_hash(session: Session, token_hash: str) -> ApiToken | None:
    return session.exec(select(ApiToken).where(col(ApiToken.token_hash) == token_hash)).first()


def token_by_name(session: Session, name: str) -> ApiToken | None:
    return session.exec(select(ApiToken).where(col(ApiToken.name) == name)).first()


def all_tokens(session: Session) -> list[ApiToken]:
    return list(session.exec(select(ApiToken).order_by(col(ApiToken.name))))


def delete_token(session: Session, name: str) -> bool:
    result = session.execute(sa.delete(ApiToken).where(col(ApiToken.name) == name))
    return bool(getattr(result, "rowcount", 0))


def token_used(session: Session, token_id: int, now: datetime) -> None:
    session.execute(
        sa.update(ApiToken).where(col(ApiToken.id) == token_id).values(last_used_at=now)
    )


def add_editor(session: Session, editor: Editor) -> None:
    session.add(editor)
    session.flush()


def editor_by_name(session: Session, name: str) -> Editor | None:
    return session.exec(select(Editor).where(col(Editor.name) == name)).first()


def all_editors(session: Session) -> list[Editor]:
    return list(session.exec(select(Editor).order_by(col(Editor.name))))


def delete_editor(session: Session, name: str) -> bool:
    result = session.execute(sa.delete(Editor).where(col(Editor.name) == name))
    return bool(getattr(result, "rowcount", 0))
