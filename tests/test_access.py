"""Who may use the editors' side: `newsletter tokens` and `newsletter editors` through the
CLI, passwords stored with scrypt, the /admin login (sessions in signed cookies, CSRF, rate
limits, logout) and bearer tokens on /api/v1."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from starlette.testclient import TestClient

from newsletter.access import passwords
from newsletter.cli import main
from newsletter.config import Settings
from newsletter.models import Scope
from newsletter.web import create_app
from newsletter.web.admin import session
from tests.admin_helpers import PASSWORD, csrf, with_admin


def _cli(config: Path, *args: str, stdin: str | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["--config", str(config), *args], input=stdin)
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def site(tmp_path: Path, database_url: str) -> Path:
    assert CliRunner().invoke(main, ["init", str(tmp_path / "site")]).exit_code == 0
    config = tmp_path / "site" / "config.toml"
    text = config.read_text().replace('url = "sqlite:///newsletter.db"', f'url = "{database_url}"')
    config.write_text(text)
    return config


def test_tokens_are_shown_once_stored_as_hashes_listed_and_revoked(
    site: Path, database_url: str
) -> None:
    code, out, err = _cli(site, "tokens", "create", "ci-bot", "--scope", "write")
    assert code == 0, err
    token = out.strip()
    assert token.startswith("nl_") and len(token) > 40
    assert "cannot be shown again" in err
    engine = sa.create_engine(database_url)
    with engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT name, scope, token_hash FROM api_token")).one()
    engine.dispose()
    assert stored[0] == "ci-bot" and stored[1] == "write"
    assert token not in stored[2]  # only the hash is kept
    code, out, _ = _cli(site, "tokens", "list")
    assert code == 0 and "ci-bot\twrite" in out and token not in out and "last used never" in out
    code, _, err = _cli(site, "tokens", "create", "ci-bot")
    assert code == 1 and "exists already" in err
    code, _, err = _cli(site, "tokens", "create", "two words")
    assert code == 1 and "name" in err
    code, _, err = _cli(site, "tokens", "create", "x", "--scope", "admin")
    assert code == 2 and "admin" in err
    assert _cli(site, "tokens", "revoke", "ci-bot")[0] == 0
    code, _, err = _cli(site, "tokens", "revoke", "ci-bot")
    assert code == 1 and "no token 'ci-bot'" in err


def test_editors_are_added_with_a_strong_enough_password_and_removed(site: Path) -> None:
    code, _, err = _cli(site, "editors", "add", "alice", "--password-stdin", stdin="short\n")
    assert code == 1 and "password: must be at least 10 characters" in err
    code, _, err = _cli(site, "editors", "add", "alice", "--password-stdin", stdin=PASSWORD)
    assert code == 0, err
    code, _, err = _cli(site, "editors", "add", "alice", "--password-stdin", stdin=PASSWORD)
    assert code == 1 and "exists already" in err
    assert _cli(site, "editors", "list")[1].split() == ["alice"]
    assert _cli(site, "editors", "remove", "alice")[0] == 0
    assert _cli(site, "editors", "list")[1].split() == []


def test_passwords_are_salted_scrypt_hashes() -> None:
    first, second = passwords.hash_password(PASSWORD), passwords.hash_password(PASSWORD)
    assert first != second and first.startswith("scrypt$32768$8$1$")
    assert passwords.verify(PASSWORD, first) and passwords.verify(PASSWORD, second)
    assert not passwords.verify(PASSWORD + "x", first)
    assert not passwords.verify(PASSWORD, "plain$text")
    assert not passwords.verify(PASSWORD, "scrypt$notanumber$8$1$aa$bb")


def test_session_cookies_are_signed_and_expire() -> None:
    secret = b"s" * 32
    value = session.encode(secret, "alice", now=1000)
    assert session.decode(secret, value, now=1001) == "alice"
    assert session.decode(secret, value, now=1000 + session.LIFETIME + 1) is None
    assert session.decode(b"t" * 32, value, now=1001) is None
    mac = value.split(".")[1]
    forged = session.encode(secret, "mallory", now=1000).split(".")[0] + "." + mac
    assert session.decode(secret, forged, now=1001) is None
    assert session.decode(secret, "garbage", now=1001) is None


@pytest.fixture
def admin_settings(settings: Settings) -> Settings:
    return with_admin(settings)


@pytest.fixture
def admin_client(admin_settings: Settings, engine: sa.Engine) -> Iterator[TestClient]:
    app = create_app(admin_settings, engine)
    with TestClient(app, base_url="https://news.test") as c:
        yield c


def _login(client: TestClient, name: str, password: str, next_path: str = "/admin") -> object:
    form = client.get("/admin/login", params={"next": next_path})
    data = {"csrf_token": csrf(form.text), "username": name, "password": password}
    return client.post("/admin/login", data={**data, "next": next_path}, follow_redirects=False)


def test_login_sets_a_strict_httponly_secure_cookie_and_logout_ends_it(
    admin_client: TestClient,
) -> None:
    wrong = _login(admin_client, "admin", "not the password")
    assert wrong.status_code == 401  # type: ignore[attr-defined]
    assert "do not match" in wrong.text  # type: ignore[attr-defined]
    assert session.COOKIE not in admin_client.cookies
    ok = _login(admin_client, "admin", PASSWORD, "/admin/runs")
    assert ok.status_code == 303 and ok.headers["location"] == "/admin/runs"  # type: ignore[attr-defined]
    cookie = ok.headers["set-cookie"]  # type: ignore[attr-defined]
    for flag in ("HttpOnly", "Secure", "SameSite=strict", "Path=/admin"):
        assert flag.lower() in cookie.lower()
    page = admin_client.get("/admin/login")  # logged in: the login page sends you on
    assert page.url.path == "/admin"
    logout_form = admin_client.get("/admin/runs")
    assert admin_client.post("/admin/logout", data={}).status_code == 403  # no CSRF token
    out = admin_client.post(
        "/admin/logout", data={"csrf_token": csrf(logout_form.text)}, follow_redirects=False
    )
    assert out.status_code == 303 and out.headers["location"].startswith("/admin/login")
    after = admin_client.get("/admin/runs", follow_redirects=False)
    assert after.status_code == 303
    assert after.headers["location"] == "/admin/login?next=%2Fadmin%2Fruns"


def test_login_refuses_a_form_without_its_csrf_token_and_foreign_next_targets(
    admin_client: TestClient,
) -> None:
    bare = admin_client.post("/admin/login", data={"username": "admin", "password": PASSWORD})
    assert bare.status_code == 403
    assert session.COOKIE not in admin_client.cookies
    away = _login(admin_client, "admin", PASSWORD, "https://evil.example/")
    assert away.headers["location"] == "/admin"  # type: ignore[attr-defined]
    admin_client.cookies.clear()
    away = _login(admin_client, "admin", PASSWORD, "//evil.example/admin")
    assert away.headers["location"] == "/admin"  # type: ignore[attr-defined]


def test_login_attempts_are_limited(admin_client: TestClient) -> None:
    answers = [_login(admin_client, "admin", f"guess {i}").status_code for i in range(12)]  # type: ignore[attr-defined]
    assert answers[:10] == [401] * 10
    assert answers[10:] == [429, 429]
    late = _login(admin_client, "admin", PASSWORD)
    assert late.status_code == 429  # type: ignore[attr-defined]
    assert "Too many attempts" in late.text  # type: ignore[attr-defined]


def test_an_editor_account_logs_in_and_a_removed_editor_is_logged_out(
    admin_client: TestClient,
) -> None:
    access = admin_client.app.app.state.services.access  # type: ignore[attr-defined]
    access.add_editor("bea", PASSWORD + "b")
    assert _login(admin_client, "bea", PASSWORD).status_code == 401  # type: ignore[attr-defined]
    assert _login(admin_client, "bea", PASSWORD + "b").status_code == 303  # type: ignore[attr-defined]
    assert admin_client.get("/admin/runs", follow_redirects=False).status_code != 303
    access.remove_editor("bea")
    assert admin_client.get("/admin/runs", follow_redirects=False).status_code == 303


def test_without_any_account_the_login_page_says_how_to_create_one(client: TestClient) -> None:
    page = client.get("/admin/login")
    assert page.status_code == 200
    assert "newsletter editors add" in page.text


def test_a_token_records_its_last_use(client: TestClient) -> None:
    access = client.app.app.state.services.access  # type: ignore[attr-defined]
    token = access.create_token("reader", Scope.read)
    assert access.tokens()[0].last_used_at is None
    assert access.authenticate_token(token) is not None
    assert access.tokens()[0].last_used_at is not None
    assert access.authenticate_token(token + "x") is None
    assert access.authenticate_token("Bearer " + token) is None


def test_a_notice_in_a_link_shows_only_to_a_logged_in_editor(admin_client: TestClient) -> None:
    """Notices travel in the redirect's query; a link from elsewhere arrives without the
    SameSite=Strict session, so its words never show on the login page."""
    words = "Our admin has moved: log in at evil.example"
    page = admin_client.get("/admin/login", params={"notice": words})
    assert words not in page.text
    assert _login(admin_client, "admin", PASSWORD).status_code == 303  # type: ignore[attr-defined]
    shown = admin_client.get("/admin", params={"notice": "Saved."})
    assert '<p class="notice" role="status">Saved.</p>' in shown.text
    out = admin_client.post(
        "/admin/logout", data={"csrf_token": csrf(shown.text)}, follow_redirects=True
    )
    assert "You are logged out." in out.text
