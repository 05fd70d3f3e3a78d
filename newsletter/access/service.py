"""Who may use /api/v1 and /admin: bearer tokens and editors' accounts.

Tokens are random (32 bytes, base64url, prefixed `nl_` so a leaked one is recognisable in
logs and secret scanners) and stored as their SHA-256: a token has enough entropy that a
slow hash adds nothing. Passwords are stored with scrypt (access.passwords)."""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session

from newsletter import storage
from newsletter.access import passwords
from newsletter.config import Settings
from newsletter.errors import DuplicateError, InvalidInputError, NotFoundError
from newsletter.models import ApiToken, Editor, Scope
from newsletter.storage.retry import retry_on_busy

TOKEN_PREFIX = "nl_"
# a token's last use is written at most this often, so reads do not each cost a write
LAST_USED_EVERY = timedelta(minutes=1)


@dataclass(frozen=True)
class TokenView:
    name: str
    scope: Scope
    created_at: datetime
    last_used_at: datetime | None


@dataclass(frozen=True)
class Caller:
    """Whoever made an authenticated request: a token or an editor."""

    name: str
    scope: Scope


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _check_name(field: str, name: str) -> str:
    name = name.strip()
    if not name:
        raise InvalidInputError(field, "must not be empty")
    if len(name) > 100:
        raise InvalidInputError(field, "must be at most 100 characters long")
    if any(ch.isspace() or not ch.isprintable() for ch in name):
        raise InvalidInputError(field, "must not contain spaces or control characters", name)
    return name


class Access:
    def __init__(
        self, engine: sa.Engine, settings: Settings, clock: Callable[[], datetime]
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.clock = clock

    # ------------------------------------------------------------------ tokens

    @retry_on_busy()
    def create_token(self, name: str, scope: Scope) -> str:
        """A new token, returned once; only its hash is stored."""
        name = _check_name("name", name)
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        with Session(self.engine) as session:
            if storage.token_by_name(session, name):
                raise DuplicateError("token", name)
            row = ApiToken(
                name=name, scope=scope, token_hash=_digest(token), created_at=self.clock()
            )
            storage.add_token(session, row)
            session.commit()
        return token

    def tokens(self) -> list[TokenView]:
        with Session(self.engine) as session:
            return [
                TokenView(t.name, Scope(t.scope), t.created_at, t.last_used_at)
                for t in storage.all_tokens(session)
            ]

    @retry_on_busy()
    def revoke_token(self, name: str) -> None:
        with Session(self.engine) as session:
            if not storage.delete_token(session, name):
                raise NotFoundError("token", name)
            session.commit()

    def authenticate_token(self, token: str) -> Caller | None:
        """The caller a bearer token stands for; None for an unknown or revoked token."""
        if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
            return None
        now = self.clock()
        with Session(self.engine) as session:
            row = storage.token_by_hash(session, _digest(token))
            if row is None or row.id is None:
                return None
            caller = Caller(row.name, Scope(row.scope))
            if row.last_used_at is None or now - row.last_used_at >= LAST_USED_EVERY:
                storage.token_used(session, row.id, now)
                session.commit()
        return caller

    # ------------------------------------------------------------------ editors

    @retry_on_busy()
    def add_editor(self, name: str, password: str) -> None:
        name = _check_name("name", name)
        if name == self.settings.admin.username and self.settings.admin.password:
            raise DuplicateError("editor", name)
        weak = passwords.weakness(password)
        if weak:
            raise InvalidInputError("password", weak)
        with Session(self.engine) as session:
            if storage.editor_by_name(session, name):
                raise DuplicateError("editor", name)
            hashed = passwords.hash_password(password)
            storage.add_editor(
                session, Editor(name=name, password_hash=hashed, created_at=self.clock())
            )
            session.commit()

    def editors(self) -> list[str]:
        """Every account's name: config.toml's [admin] user first when it has a password."""
        with Session(self.engine) as session:
            names = [e.name for e in storage.all_editors(session)]
        if self.settings.admin.password:
            names.insert(0, self.settings.admin.username)
        return names

    @retry_on_busy()
    def remove_editor(self, name: str) -> None:
        with Session(self.engine) as session:
            if not storage.delete_editor(session, name):
                raise NotFoundError("editor", name)
            session.commit()

    def authenticate_editor(self, name: str, password: str) -> Caller | None:
        """The editor these credentials belong to; None otherwise. An unknown name costs
        the same scrypt work as a wrong password, so timing does not tell names apart."""
        admin = self.settings.admin
        if admin.password and hmac.compare_digest(name.encode(), admin.username.encode()):
            ok = hmac.compare_digest(password.encode(), admin.password.encode())
            return Caller(name, Scope.write) if ok else None
        with Session(self.engine) as session:
            editor = storage.editor_by_name(session, name[:100])
        stored = editor.password_hash if editor else _dummy_hash()
        if passwords.verify(password, stored) and editor is not None:
            return Caller(editor.name, Scope.write)
        return None

    def editor_exists(self, name: str) -> bool:
        """Whether `name` may still log in (a removed editor's session ends with it)."""
        admin = self.settings.admin
        if admin.password and name == admin.username:
            return True
        with Session(self.engine) as session:
            return storage.editor_by_name(session, name) is not None

    def has_editors(self) -> bool:
        """Whether anyone can log in at all (else /admin says how to create an account)."""
        return bool(self.editors())


@functools.cache
def _dummy_hash() -> str:
    return passwords.hash_password(secrets.token_urlsafe(16))
