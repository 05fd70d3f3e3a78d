"""Engine creation and schema migrations (Alembic). The service upgrades on start.

The database holds subscribers' addresses and the keys of the links mailed to them, so a
SQLite file is created readable by its owner only, failed statements do not carry their
parameters into messages and logs, and no message shows the password of the database URL.
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError

from newsletter.config import redact_url, url_password
from newsletter.errors import ConfigError

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    # WAL lets the web process read while the CLI or scheduler writes;
    # foreign keys are off by default in SQLite and the schema relies on them.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=5000")
    cur.close()


def display_url(url: str | sa.URL) -> str:
    """`url` fit for a message or a log: its password replaced by ***."""
    if isinstance(url, sa.URL):
        return url.render_as_string(hide_password=True)
    try:
        parsed = sa.make_url(url)
    except (sa.exc.ArgumentError, ValueError):
        return redact_url(url)
    if parsed.password is None:
        return url  # as written (SQLAlchemy would percent-encode a non-ASCII file name)
    if parsed.host and "@" in parsed.host:  # an unencoded '@' in the password
        return redact_url(url)
    return parsed.render_as_string(hide_password=True)


def _scrub(text: str, url: str | sa.URL) -> str:
    """`text` (a driver's message) with the password of `url` replaced by ***, should the
    driver have quoted it. Passwords shorter than 4 characters are left: replacing every
    'a' in a message hides nothing and garbles it."""
    passwords: set[str | None] = {url.password} if isinstance(url, sa.URL) else {url_password(url)}
    if isinstance(url, str):
        with contextlib.suppress(sa.exc.ArgumentError, ValueError):
            passwords.add(sa.make_url(url).password)
    for password in sorted((p for p in passwords if p and len(p) >= 4), key=len, reverse=True):
        text = text.replace(password, "***")
    return text


def _unusable(url: str | sa.URL, reason: str) -> ConfigError:
    return ConfigError(
        f"[database] url = {display_url(url)!r} is not usable: {_scrub(reason, url)}"
    )


def _cannot_open(url: str | sa.URL, exc: sa.exc.DBAPIError) -> ConfigError:
    reason = str(exc.orig if exc.orig is not None else exc).strip()
    return ConfigError(
        f"[database] url = {display_url(url)!r}: cannot open the database: {_scrub(reason, url)}"
    )


def _create_private_sqlite_file(url: sa.URL) -> None:
    """Create the file of a SQLite database that does not exist yet, readable and writable
    by its owner only, before SQLite creates it with the mode the umask leaves. SQLite gives
    the -wal and -shm files it creates beside it the database file's mode."""
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return  # in memory, or a URI filename SQLite opens itself
    try:
        fd = os.open(database, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return  # an existing database keeps the mode its owner gave it
    except OSError as exc:
        raise _unusable(
            url, f"cannot create the database file {database}: {exc.strerror}"
        ) from None
    os.close(fd)  # an empty file is an empty SQLite database


def create_engine(url: str) -> sa.Engine:
    """An engine for `url`; SQLite gets WAL and foreign keys, PostgreSQL uses psycopg 3.
    A SQLite file that does not exist yet is created private (mode 0600)."""
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    try:
        parsed = sa.make_url(url)
    except (sa.exc.ArgumentError, ValueError) as exc:
        raise _unusable(url, str(exc)) from None
    if parsed.host and "@" in parsed.host:
        raise _unusable(url, "write '@' in the user name or password as %40")
    try:
        if parsed.get_backend_name() == "sqlite":
            _create_private_sqlite_file(parsed)
            engine = sa.create_engine(
                parsed, connect_args={"check_same_thread": False}, hide_parameters=True
            )
            sa.event.listen(engine, "connect", _sqlite_pragmas)
        else:
            # hide_parameters: a failed statement's message (and log line) would otherwise
            # carry its parameters: addresses, confirmation nonces, link keys
            engine = sa.create_engine(parsed, pool_pre_ping=True, hide_parameters=True)
    except (sa.exc.ArgumentError, ImportError) as exc:
        raise _unusable(url, str(exc)) from None
    return engine


# Alembic loads when a schema changes or is asked about, not in every process (see
# newest_revision); hence the imports inside the functions below.


def _alembic_config(engine: sa.Engine) -> AlembicConfig:
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def _script() -> ScriptDirectory:
    from alembic.script import ScriptDirectory

    return ScriptDirectory(str(MIGRATIONS))


def _revision_error(revision: str, exc: CommandError) -> ConfigError:
    """A wrong REVISION argument, said in words: unknown, or not reachable from here."""
    script = _script()
    try:
        script.get_revisions(revision)
    except Exception:
        known = [s.revision for s in reversed(list(script.walk_revisions()))]
        return ConfigError(
            f"unknown revision {revision!r}; known revisions: base, "
            + ", ".join(known)
            + " (head), or relative steps such as -1"
        )
    return ConfigError(f"revision {revision!r}: {exc}")


def upgrade(engine: sa.Engine, revision: str = "head") -> None:
    """Bring the schema to `revision` (default: the newest). ConfigError for a revision
    that does not exist or is not ahead of the current one."""
    from alembic import command
    from alembic.util import CommandError

    try:
        command.upgrade(_alembic_config(engine), revision)
    except CommandError as exc:
        raise _revision_error(revision, exc) from None


def downgrade_plan(engine: sa.Engine, revision: str) -> list[str]:
    """The migrations a downgrade to `revision` would undo, newest first (each drops what
    it added, with its data); nothing is changed. ConfigError for a revision that does not
    exist or is not behind the current one."""
    from alembic.util import CommandError

    current = current_revision(engine)
    try:
        # the same resolution `alembic downgrade` does (relative steps such as -1 included)
        steps = _script()._downgrade_revs(revision, current)
    except CommandError as exc:
        raise _revision_error(revision, exc) from None
    return [step.revision.revision for step in steps]


def downgrade(engine: sa.Engine, revision: str) -> None:
    from alembic import command
    from alembic.util import CommandError

    try:
        command.downgrade(_alembic_config(engine), revision)
    except CommandError as exc:
        raise _revision_error(revision, exc) from None


def current_revision(engine: sa.Engine) -> str | None:
    """The schema revision of the database (None when empty); ConfigError when the
    database cannot be reached."""
    from alembic.runtime.migration import MigrationContext

    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    except (sa.exc.OperationalError, sa.exc.InterfaceError) as exc:
        raise _cannot_open(engine.url, exc) from None


def head_revision() -> str | None:
    return _script().get_current_head()


def newest_revision() -> str:
    """The newest migration's revision, read from the file names (NNNN_what.py), so that
    a process opening a database already at head never loads Alembic (11 MB a process)."""
    names = [p.name for p in (MIGRATIONS / "versions").glob("[0-9]*.py")]
    return max(re.match(r"\d+", name).group(0) for name in names)  # type: ignore[union-attr]


def _recorded_revision(engine: sa.Engine) -> str | None:
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
    except sa.exc.DatabaseError:  # no such table: an empty database
        return None


def open_database(url: str) -> sa.Engine:
    """An engine whose schema is at head: what every entry point calls at start."""
    engine = create_engine(url)
    try:
        if _recorded_revision(engine) == newest_revision():
            return engine
        if current_revision(engine) != head_revision():
            upgrade(engine)
    except sa.exc.OperationalError as exc:
        engine.dispose()
        raise _cannot_open(engine.url, exc) from None
    except BaseException:
        engine.dispose()
        raise
    return engine
