"""What an operator can get wrong or an attacker on the same host can plant (issue #9,
findings 12, 14 and 15): the static export, files holding secrets and personal data, and
configuration and command-line mistakes that must stop a command with a clear message."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import stat
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from newsletter import articles, config
from newsletter.cli import main
from newsletter.config import MailSettings, Settings, SiteSettings
from newsletter.errors import ConfigError
from newsletter.feeds import export
from newsletter.mail import Composer, Envelope
from newsletter.mail.transports import OutboxMailer
from newsletter.storage import database
from newsletter.text import slugify
from tests.helpers import context

PAST = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)
LONG_CJK_TAG = "日本経済" * 50  # 200 characters, 600 bytes of UTF-8
KOREAN_TAG = "한국 경제"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


@contextlib.contextmanager
def umask(value: int) -> Iterator[None]:
    old = os.umask(value)
    try:
        yield
    finally:
        os.umask(old)


def cli(config_path: Path, *args: str, env: dict[str, str] | None = None, **kw: Any) -> Result:
    return CliRunner().invoke(main, ["--config", str(config_path), *args], env=env or {}, **kw)


def store(engine: sa.Engine, settings: Settings, *records: dict[str, Any]) -> None:
    parsed = [articles.validate(r, f"test#{i}", context(settings)) for i, r in enumerate(records)]
    report = articles.import_articles(
        engine, parsed, base_url=settings.base_url, now=datetime.now(UTC)
    )
    assert not report.errors, report.errors


def record(n: int, **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "guid": f"story-{n}",
        "slug": f"story-{n}",
        "title": f"Story {n}",
        "body": f"<p>Body of story {n}.</p>",
        "published_at": (PAST + timedelta(hours=n)).isoformat(),
        "author": {"name": "Budi", "slug": "budi"},
    }
    base.update(fields)
    return base


def opml_paths(out: Path) -> list[str]:
    """The URL paths of every feed the exported OPML lists, decoded as nginx decodes them."""
    outlines = ET.parse(out / "feeds.opml").getroot().iter("outline")
    return [unquote(urlsplit(o.attrib["xmlUrl"]).path) for o in outlines if "xmlUrl" in o.attrib]


# ------------------------------------------------------------------ 12: the static export


def test_slugs_are_bounded_in_bytes_at_a_character_boundary() -> None:
    for value in (LONG_CJK_TAG, "가나다 " * 100, "é" * 300, "a" * 150 + " " + "한" * 100):
        slug = slugify(value)
        assert 0 < len(slug.encode("utf-8")) <= 200, value
        assert not slug.endswith("-")
        assert slugify(value, max_bytes=10_000).startswith(slug)
    # ASCII slugs of up to 200 characters are what they always were (stored slugs and the
    # guids derived from them stay valid)
    words = " ".join(f"word{i}" for i in range(40))
    assert slugify(words) == "-".join(words.split())[:200].strip("-")


@pytest.fixture
def stocked(engine: sa.Engine, settings: Settings) -> sa.Engine:
    store(
        engine,
        settings,
        record(1, tags=[LONG_CJK_TAG, "Trade"]),
        record(2, tags=[KOREAN_TAG, "Trade"]),
        record(3, tags=["North Korea"]),
    )
    return engine


def test_export_writes_every_feed_where_nginx_looks_for_the_opml_urls(
    stocked: sa.Engine, settings: Settings, tmp_path: Path
) -> None:
    out = tmp_path / "public"
    report = export.build(stocked, settings, out, datetime.now(UTC))
    assert report.errors == []
    paths = opml_paths(out)
    assert "/tags/한국-경제/feed.rss" in paths
    assert len(paths) == 6  # site, four tags, one author
    for path in paths:
        for fmt in ("rss", "atom", "json"):
            assert (out / path.lstrip("/")).with_suffix("." + fmt).is_file(), path
    assert (out / "tags" / "한국-경제" / "feed.json").is_file()
    assert not list(out.rglob("*%*"))  # nothing percent-encoded on disk


def test_export_shortens_a_stored_slug_too_long_for_a_file_name_and_says_so(
    stocked: sa.Engine, settings: Settings, tmp_path: Path
) -> None:
    long_slug = "가" * 200  # stored before slugs were bounded: 600 bytes
    with stocked.begin() as conn:
        conn.execute(sa.text("UPDATE tag SET slug = :new WHERE slug = 'trade'"), {"new": long_slug})
    out = tmp_path / "public"
    report = export.build(stocked, settings, out, datetime.now(UTC))
    assert report.errors == []
    assert report.written == 20  # 6 feeds x 3 formats + OPML + feed.xsl
    assert len(report.notices) == 3
    assert all(long_slug in notice and "255 bytes" in notice for notice in report.notices)
    shortened = [p for p in (out / "tags").iterdir() if p.name.startswith("가")]
    assert len(shortened) == 1
    assert len(shortened[0].name.encode()) <= 255
    assert {p.name for p in shortened[0].iterdir()} == {"feed.rss", "feed.atom", "feed.json"}
    assert (out / "tags" / "north-korea" / "feed.rss").is_file()
    again = export.build(stocked, settings, out, datetime.now(UTC))
    assert (again.written, again.unchanged) == (0, 20)


def test_export_does_not_follow_a_symlink_planted_at_the_temporary_name(
    stocked: sa.Engine, settings: Settings, tmp_path: Path
) -> None:
    out = tmp_path / "public"
    (out / "tags" / "trade").mkdir(parents=True)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    for planted in (out / "feed.rss.tmp", out / "tags" / "trade" / "feed.atom.tmp"):
        planted.symlink_to(victim)
    report = export.build(stocked, settings, out, datetime.now(UTC))
    assert report.errors == []
    assert victim.read_text() == "precious"
    assert not (out / "feed.rss").is_symlink()
    assert (out / "feed.rss").read_bytes().startswith(b"<?xml")
    assert (out / "tags" / "trade" / "feed.atom").read_bytes().startswith(b"<?xml")


def test_one_unwritable_file_does_not_stop_the_others(
    stocked: sa.Engine, settings: Settings, tmp_path: Path, database_url: str
) -> None:
    out = tmp_path / "public"
    blocked = out / "tags" / "trade" / "feed.rss"
    (blocked / "in-the-way").mkdir(parents=True)  # a folder where the feed should go
    report = export.build(stocked, settings, out, datetime.now(UTC))
    assert len(report.errors) == 1
    assert str(report.errors[0]).startswith("tags/trade/feed.rss: ")
    assert report.written == 19
    assert (out / "tags" / "trade" / "feed.atom").is_file()
    assert (out / "tags" / "north-korea" / "feed.rss").is_file()
    assert (out / "feeds.opml").is_file()

    config.write_fresh_config(tmp_path)
    env = {"NEWSLETTER_DATABASE__URL": database_url, "NEWSLETTER_SITE__BASE_URL": settings.base_url}
    result = cli(tmp_path / "config.toml", "feeds", "build", str(out), env=env)
    assert result.exit_code == 1, result.output
    assert f"error: {blocked}: " in result.output
    assert "0 written, 19 unchanged, 1 failed" in result.output


def test_an_export_folder_that_cannot_be_written_is_a_clear_error(
    tmp_path: Path, database_url: str
) -> None:
    config.write_fresh_config(tmp_path)
    (tmp_path / "a-file").write_text("")
    out = tmp_path / "a-file" / "public"
    result = cli(
        tmp_path / "config.toml",
        "feeds",
        "build",
        str(out),
        env={"NEWSLETTER_DATABASE__URL": database_url},
    )
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)  # a message, not a traceback
    assert f"error: {out}: cannot write there" in result.output


# ---------------------------------------------------------- 14: secrets and personal data


def test_init_writes_a_private_config_and_database_from_the_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a chmod after writing leaves a moment in which others can read the secret: there
    # must be nothing to fix afterwards
    monkeypatch.setattr(Path, "chmod", lambda *_a, **_k: None)
    with umask(0o022):
        result = CliRunner().invoke(main, ["init", str(tmp_path / "site")])
    assert result.exit_code == 0, result.output
    assert mode(tmp_path / "site" / "config.toml") == 0o600
    assert mode(tmp_path / "site" / "newsletter.db") == 0o600


def test_init_does_not_write_the_secret_through_a_planted_symlink(tmp_path: Path) -> None:
    (tmp_path / "site").mkdir()
    elsewhere = tmp_path / "elsewhere.toml"
    (tmp_path / "site" / "config.toml").symlink_to(elsewhere)  # dangling
    result = CliRunner().invoke(main, ["init", str(tmp_path / "site")])
    assert result.exit_code == 2
    assert "already exists" in result.output
    assert not elsewhere.exists()


def test_sqlite_database_and_its_journal_files_are_private(
    tmp_path: Path, database_url: str
) -> None:
    if not database_url.startswith("sqlite"):
        pytest.skip("file modes are a SQLite matter")
    path = tmp_path / "private.db"
    with umask(0o022):
        engine = database.create_engine(f"sqlite:///{path}")
        try:
            with engine.begin() as conn:
                conn.exec_driver_sql("CREATE TABLE t (x TEXT)")
                conn.exec_driver_sql("INSERT INTO t VALUES ('reader@example.org')")
            with engine.connect():
                for name in ("private.db", "private.db-wal", "private.db-shm"):
                    assert mode(tmp_path / name) == 0o600, name
        finally:
            engine.dispose()


def test_outbox_messages_and_their_folder_are_private(tmp_path: Path) -> None:
    outbox = OutboxMailer(tmp_path / "outbox")
    envelope = Envelope("n@news.test", "r@example.org", b"Subject: token\r\n\r\nx\r\n", "<m@n>")
    with umask(0o022):
        asyncio.run(outbox.send(envelope))
    files = list((tmp_path / "outbox").iterdir())
    assert len(files) == 1 and files[0].suffix == ".eml"
    assert mode(files[0]) == 0o600
    assert mode(tmp_path / "outbox") == 0o700
    assert files[0].read_bytes() == envelope.data


@pytest.mark.parametrize(
    "url",
    [
        "mysql://news:s3cretpw@db.example/news",  # not a database we speak
        "postgresql+nodriver://news:s3cretpw@db.example/news",  # no such driver
        "postgresql+psycopg://news:s3cretpw@127.0.0.1:notaport/news",  # unparseable port
        "postgresql+psycopg://news:s3cret@pw@127.0.0.1:1/news",  # '@' not percent-encoded
        "postgresql+psycopg://news:s3cretpw@127.0.0.1:1/news",  # nobody listening
    ],
)
def test_a_bad_database_url_never_shows_its_password(tmp_path: Path, url: str) -> None:
    config.write_fresh_config(tmp_path)
    result = cli(tmp_path / "config.toml", "db", "current", env={"NEWSLETTER_DATABASE__URL": url})
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)
    assert "error: [database] url" in result.output
    assert "s3cret" not in result.output
    assert "pw@" not in result.output


def test_init_shows_the_database_url_without_its_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import newsletter.cli.setup as setup_cli

    opened: list[str] = []

    class Opened:
        def dispose(self) -> None:
            pass

    def fake_open(url: str) -> Opened:
        opened.append(url)
        return Opened()

    monkeypatch.setattr(setup_cli, "open_database", fake_open)
    url = "postgresql+psycopg://news:s3cretpw@db.example/news"
    result = CliRunner().invoke(
        main, ["init", str(tmp_path)], env={"NEWSLETTER_DATABASE__URL": url}
    )
    assert result.exit_code == 0, result.output
    assert opened == [url]
    assert "database ready at postgresql+psycopg://news:***@db.example/news" in result.output
    assert "s3cretpw" not in result.output


def test_failed_statements_do_not_carry_their_parameters(database_url: str) -> None:
    engine = database.create_engine(database_url)
    try:
        with pytest.raises(sa.exc.DBAPIError) as info, engine.begin() as conn:
            conn.execute(
                sa.text("INSERT INTO no_such_table (email) VALUES (:email)"),
                {"email": "reader@example.org"},
            )
        assert "reader@example.org" not in str(info.value)
    finally:
        engine.dispose()


# ------------------------------------------------------------- 15: CLI and config errors


def test_a_config_that_is_not_utf8_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_bytes(b'[site]\ntitle = "Caf\xe9"\n')  # Latin-1
    with pytest.raises(ConfigError, match=r"config\.toml: not valid UTF-8"):
        config.load(path, {})
    result = cli(path, "articles", "list")
    assert result.exit_code == 2
    assert "not valid UTF-8" in result.output


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("mail", "from_name", "Ledger\r\nBcc: everyone@example.org"),
        ("mail", "from_address", "news@example.org\x00"),
        ("site", "title", "The Ledger\nX-Injected: yes"),
        ("mail", "dkim_selector", "s1\r\n"),
        ("mail", "dkim_domain", "news.example\n"),
        ("mail", "from_name", "Ledger\u2028Bcc: x@example.org"),  # a line break to Python
    ],
)
def test_control_characters_in_header_settings_are_refused_at_load(
    tmp_path: Path, section: str, key: str, value: str
) -> None:
    path = tmp_path / "config.toml"
    path.write_text("")
    with pytest.raises(ConfigError, match=rf"\[{section}\] {key} = .* is not allowed"):
        config.load(path, {f"NEWSLETTER_{section.upper()}__{key.upper()}": value})
    escaped = "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in value)  # TOML
    path.write_text(f'[{section}]\n{key} = "{escaped}"\n')
    with pytest.raises(ConfigError, match=rf"\[{section}\] {key} = .* is not allowed"):
        config.load(path, {})


def test_a_refused_secret_setting_is_not_shown(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[smtp]\npassword = "hunter2\\n"\n')
    with pytest.raises(ConfigError, match=r"\[smtp\] password") as info:
        config.load(path, {})
    assert "hunter2" not in str(info.value)


def ed25519_key() -> bytes:
    raw = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    return base64.b64encode(raw)


def rsa_key(fmt: serialization.PrivateFormat) -> bytes:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, fmt, serialization.NoEncryption()
    )


def mail_settings(tmp_path: Path, key: bytes) -> Settings:
    (tmp_path / "dkim.key").write_bytes(key)
    return Settings(
        root=tmp_path,
        site=SiteSettings(base_url="https://news.test"),
        mail=MailSettings(from_address="newsletter@news.test", dkim_key_file="dkim.key"),
    )


@pytest.mark.parametrize(
    "key",
    [
        b"not a key at all\n",
        base64.b64encode(b"\x01" * 31),  # one byte short of an Ed25519 key
        b"-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n",
        ec.generate_private_key(ec.SECP256R1()).private_bytes(  # a key DKIM has no use for
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    ],
    ids=["text", "31 bytes", "bad PEM", "ec PEM"],
)
def test_a_malformed_dkim_key_is_refused_at_start(tmp_path: Path, key: bytes) -> None:
    with pytest.raises(ConfigError, match=r"\[mail\] dkim_key_file = 'dkim\.key' is not"):
        Composer(mail_settings(tmp_path, key))


@pytest.mark.parametrize(
    "kind", ["ed25519", "ed25519 with newline", "ed25519 pem", "rsa pkcs1", "rsa pkcs8"]
)
def test_usable_dkim_keys_are_accepted_and_sign(tmp_path: Path, kind: str) -> None:
    key = {
        "ed25519": ed25519_key,
        "ed25519 with newline": lambda: ed25519_key() + b"\n",
        "ed25519 pem": lambda: ed25519.Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        "rsa pkcs1": lambda: rsa_key(serialization.PrivateFormat.TraditionalOpenSSL),
        "rsa pkcs8": lambda: rsa_key(serialization.PrivateFormat.PKCS8),  # openssl genpkey
    }[kind]()
    composer = Composer(mail_settings(tmp_path, key))
    assert composer.signer is not None
    assert composer.signer.sign(b"From: a@news.test\r\n\r\nx\r\n").startswith(b"DKIM-Signature:")


def test_serve_refuses_to_start_with_a_malformed_dkim_key(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uvicorn

    import newsletter.services

    started: list[object] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **_kw: started.append(app))
    # services.build opens the database before it builds the Composer that refuses the key
    # and does not close it on the way out; closed here, so no connection outlives the test
    engines: list[sa.Engine] = []

    def open_database(url: str) -> sa.Engine:
        engines.append(database.open_database(url))
        return engines[-1]

    monkeypatch.setattr(newsletter.services, "open_database", open_database)
    (tmp_path / "dkim.key").write_bytes(b"garbage")
    path = config.write_fresh_config(tmp_path)
    env = {"NEWSLETTER_DATABASE__URL": database_url, "NEWSLETTER_MAIL__DKIM_KEY_FILE": "dkim.key"}
    try:
        result = cli(path, "serve", env=env)
    finally:
        for engine in engines:
            engine.dispose()
    assert result.exit_code == 2, result.output
    assert "[mail] dkim_key_file = 'dkim.key' is not" in result.output
    assert started == []


@pytest.fixture
def site(tmp_path: Path, database_url: str) -> Path:
    config.write_fresh_config(tmp_path)
    env = {"NEWSLETTER_DATABASE__URL": database_url}
    assert cli(tmp_path / "config.toml", "db", "upgrade", env=env).exit_code == 0
    return tmp_path / "config.toml"


@pytest.mark.parametrize("command", ["upgrade", "downgrade"])
def test_an_unknown_revision_is_a_usage_error(site: Path, database_url: str, command: str) -> None:
    env = {"NEWSLETTER_DATABASE__URL": database_url}
    result = cli(site, "db", command, "nope", env=env)
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)
    assert "unknown revision 'nope'" in result.output
    current = cli(site, "db", "current", env=env).output
    assert f"current: {database.head_revision()}" in current


def test_downgrade_asks_before_dropping_anything(site: Path, database_url: str) -> None:
    env = {"NEWSLETTER_DATABASE__URL": database_url}
    head = database.head_revision()
    refused = cli(site, "db", "downgrade", "base", env=env, input="n\n")
    assert refused.exit_code == 1
    assert "drop" in refused.output and "Aborted" in refused.output
    no_answer = cli(site, "db", "downgrade", "base", env=env)  # no terminal: no consent
    assert no_answer.exit_code == 1
    assert f"current: {head}" in cli(site, "db", "current", env=env).output
    agreed = cli(site, "db", "downgrade", "-1", env=env, input="y\n")
    assert agreed.exit_code == 0, agreed.output
    assert f"current: {head}" not in cli(site, "db", "current", env=env).output
    scripted = cli(site, "db", "downgrade", "base", "--yes", env=env)
    assert scripted.exit_code == 0, scripted.output
    assert "database at revision None" in scripted.output
