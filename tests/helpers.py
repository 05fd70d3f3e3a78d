"""Small helpers shared by tests."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from newsletter import articles
from newsletter.config import Settings

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def context(settings: Settings) -> articles.ImportContext:
    return articles.ImportContext.from_settings(settings)


def import_path(
    engine: sa.Engine,
    settings: Settings,
    path: Path | str,
    now: datetime = NOW,
    **options: bool,
) -> articles.ImportReport:
    """Import every source at `path` through the use case `newsletter articles import` calls
    (`options`: allow_private, allow_takeover)."""
    total = articles.ImportReport()
    locations = [str(path)]
    for outcome in articles.import_locations(engine, context(settings), locations, now, **options):
        if outcome.error is not None:
            raise outcome.error
        assert outcome.report is not None
        total.add(outcome.report)
    return total


def write_jsonl(path: Path, records: Iterable[Mapping[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def serving(
    config_path: Path, env: Mapping[str, str], port: int | None = None, *options: str
) -> Iterator[str]:
    """Run `newsletter serve` (with `options`) in a child process, as a user would; yield
    its base URL."""
    port = port or free_port()
    log_path = config_path.parent / f"serve-{port}.log"
    cmd = [sys.executable, "-m", "newsletter", "--config", str(config_path), "serve"]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [*cmd, "--port", str(port), *options],
            env={**os.environ, **env},
            stdout=log,
            stderr=log,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(base + "/healthz").raise_for_status()
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise AssertionError("server did not start:\n" + log_path.read_text()) from None
                time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def settle(client: Any) -> None:
    """Let the app's sign-up queue do everything due now (it runs in the background in the
    app's event loop; tests wait for it to finish instead of sleeping)."""
    services = client.app.app.state.services
    client.portal.call(services.subscribers.signups.drain)
