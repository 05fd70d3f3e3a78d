"""Who may use the editors' side: API tokens (stored as hashes) and editors' accounts
(passwords stored with scrypt)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from newsletter.models.types import UTCDateTime, utcnow


class Scope(StrEnum):
    read = "read"  # GET only
    write = "write"  # everything


class ApiToken(SQLModel, table=True):
    """A bearer token for /api/v1. Only the SHA-256 of the token is kept: the token is shown
    once, when it is created, and a leaked database gives nobody a working token."""

    __tablename__ = "api_token"
    __table_args__ = (sa.CheckConstraint("scope IN ('read', 'write')", name="ck_api_token_scope"),)

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=100, unique=True)
    scope: Scope = Field(max_length=8)
    token_hash: str = Field(max_length=64, unique=True)  # hex SHA-256
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    last_used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class Editor(SQLModel, table=True):
    """An account for /admin. The [admin] username and password of config.toml work as an
    account too, without a row."""

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=100, unique=True)
    password_hash: str = Field(max_length=300)  # scrypt$n$r$p$salt$hash
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
