from __future__ import annotations

from pathlib import Path

import pytest

from newsletter import config
from newsletter.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_sample_config_loads_with_every_default() -> None:
    from newsletter.resources import sample_config_path

    loaded = config.load(sample_config_path(), environ={})
    defaults = config.Settings(root=loaded.root)
    assert loaded == defaults


def test_sample_config_comments_every_key() -> None:
    from newsletter.resources import sample_config_path

    lines = sample_config_path().read_text().splitlines()
    for number, line in enumerate(lines):
        if "=" in line and not line.startswith("#"):
            previous = lines[number - 1]
            assert previous.startswith("#") or "=" in previous, f"key without comment: {line}"


def test_environment_overrides_file(tmp_path: Path) -> None:
    path = write(tmp_path, '[site]\ntitle = "From file"\n[smtp]\nport = 25\n')
    loaded = config.load(
        path,
        environ={
            "NEWSLETTER_SITE__TITLE": "From env",
            "NEWSLETTER_SMTP__PORT": "2525",
            "NEWSLETTER_DATABASE__URL": "postgresql+psycopg://db/news",
        },
    )
    assert loaded.site.title == "From env"
    assert loaded.smtp.port == 2525
    assert loaded.database_url == "postgresql+psycopg://db/news"


def test_relative_sqlite_path_resolves_against_config_folder(tmp_path: Path) -> None:
    loaded = config.load(write(tmp_path, '[database]\nurl = "sqlite:///data/news.db"\n'), {})
    assert loaded.database_url == f"sqlite:///{tmp_path}/data/news.db"
    assert loaded.outbox_path == tmp_path / "outbox"


@pytest.mark.parametrize(
    ("text", "environ", "expected"),
    [
        ("[site]\ntitel = 'x'\n", {}, "unknown key [site] titel; allowed keys in [site]: title"),
        ("[sight]\ntitle = 'x'\n", {}, "unknown section [sight]"),
        (
            "[mail]\ntransport = 'pigeon'\n",
            {},
            "[mail] transport = 'pigeon' is not allowed: "
            "expected one of 'outbox', 'smtp', 'memory'",
        ),
        (
            "[smtp]\nport = 'twenty-five'\n",
            {},
            "[smtp] port = 'twenty-five' is not allowed: expected an integer",
        ),
        (
            "[smtp]\nport = 70000\n",
            {},
            "[smtp] port = 70000 is not allowed: expected an integer from 1 to 65535",
        ),
        ("[site]\ntimezone = 'Mars/Olympus'\n", {}, "[site] timezone = 'Mars/Olympus'"),
        ("[site]\nbase_url = 'example.org'\n", {}, "expected an absolute http:// or https:// URL"),
        ("[database]\nurl = 'mysql://x'\n", {}, "[database] url = 'mysql://x' is not allowed"),
        (
            "",
            {"NEWSLETTER_SMTP__PORT": "abc"},
            "environment variable NEWSLETTER_SMTP__PORT = 'abc'",
        ),
        ("", {"NEWSLETTER_SMTP__PROT": "25"}, "unknown key [smtp] prot"),
        ("", {"NEWSLETTER_NOPE__X": "1"}, "environment variable NEWSLETTER_NOPE__X names unknown"),
        ("[site\n", {}, "not valid TOML"),
    ],
)
def test_wrong_key_or_value_names_key_value_and_what_is_allowed(
    tmp_path: Path, text: str, environ: dict[str, str], expected: str
) -> None:
    with pytest.raises(ConfigError) as info:
        config.load(write(tmp_path, text), environ)
    assert expected in str(info.value)


def test_missing_explicit_config_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such configuration file"):
        config.load(tmp_path / "absent.toml", {})


def test_settings_are_frozen(tmp_path: Path) -> None:
    loaded = config.load(write(tmp_path, ""), {})
    with pytest.raises(AttributeError):
        loaded.site.title = "changed"  # type: ignore[misc]


def test_fresh_config_has_random_secret_and_refuses_to_overwrite(tmp_path: Path) -> None:
    first = config.write_fresh_config(tmp_path / "a")
    second = config.write_fresh_config(tmp_path / "b")
    secret_a = config.load(first, {}).security.secret_key
    assert len(secret_a) >= 32
    assert secret_a != config.load(second, {}).security.secret_key
    with pytest.raises(ConfigError, match="already exists"):
        config.write_fresh_config(tmp_path / "a")


def test_empty_secret_is_generated_once_and_kept(tmp_path: Path) -> None:
    loaded = config.load(write(tmp_path, ""), {})
    assert loaded.secret == loaded.secret
    assert (tmp_path / ".secret_key").exists()
    assert config.load(tmp_path / "config.toml", {}).secret == loaded.secret


def test_relays_default_to_smtp_and_take_delivery_throttles(tmp_path: Path) -> None:
    text = '[smtp]\nhost = "mx.test"\npool_size = 6\n[delivery]\nmax_per_second = 14\n'
    [relay] = config.load(write(tmp_path, text), environ={}).relays
    assert (relay.name, relay.host, relay.pool_size, relay.weight) == ("smtp", "mx.test", 6, 1)
    assert (relay.max_per_second, relay.max_per_hour) == (14, 0)


def test_relay_tables_with_weights_and_their_own_rates(tmp_path: Path) -> None:
    text = (
        "[delivery]\nmax_per_hour = 50000\n"
        '[[relay]]\nname = "ses"\nhost = "email-smtp.test"\nweight = 3\nmax_per_second = 14\n'
        '[[relay]]\nname = "backup"\nhost = "backup.test"\nport = 25\nsecurity = "none"\n'
    )
    ses, backup = config.load(write(tmp_path, text), environ={}).relays
    assert (ses.name, ses.weight, ses.max_per_second, ses.max_per_hour) == ("ses", 3, 14, 50000)
    assert (backup.host, backup.port, backup.security, backup.weight) == (
        "backup.test",
        25,
        "none",
        1,
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[[relay]]\nname = "a"\nhots = "x"\n', r"unknown key \[relay\] hots"),
        ('[[relay]]\nname = "a"\nweight = 0\n', r"\[relay\] weight = 0 is not allowed"),
        ('[[relay]]\nname = "a"\n[[relay]]\nname = "a"\n', r"\[\[relay\]\] names must differ"),
        ('[relay]\nname = "a"\n', r"\[\[relay\]\] must be tables"),
    ],
)
def test_bad_relay_tables_are_refused_naming_the_key(
    tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        config.load(write(tmp_path, text), environ={})
