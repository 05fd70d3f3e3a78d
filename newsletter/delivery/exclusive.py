"""One sender at a time on SQLite. SQLite serialises writers, so several senders would
only queue behind each other's commits; the first to take this lock sends and the others
wait for it (and say so). The lock is a file lock beside the database: the kernel drops it
when its holder dies, however it dies. PostgreSQL needs none: workers claim disjoint rows."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
from collections.abc import AsyncIterator, Callable

import sqlalchemy as sa


def lock_path(database_url: str) -> str | None:
    url = sa.make_url(database_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return f"{url.database}.sending.lock"


@contextlib.asynccontextmanager
async def one_sender(database_url: str, on_wait: Callable[[], None]) -> AsyncIterator[None]:
    """Hold the sending lock of a SQLite database (nothing to hold on PostgreSQL); calls
    `on_wait` once when another sender has it."""
    path = lock_path(database_url)
    if path is None:
        yield
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        told = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not told:
                    on_wait()
                    told = True
                await asyncio.sleep(0.5)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
