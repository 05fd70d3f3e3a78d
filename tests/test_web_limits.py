"""What one request may cost (issue #9): body and header caps, validation errors that do not
echo their input, malformed requests answered 4xx, bounded rate-limit state keyed by
network, and a real `newsletter serve` that bounds request heads in size and time."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import select
import socket
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from starlette.testclient import TestClient

from newsletter.cli import main
from newsletter.config import Settings, SubscribersSettings
from newsletter.errors import InvalidInputError
from newsletter.subscribers import ratelimit
from newsletter.subscribers.addresses import normalize_email
from newsletter.web import create_app
from tests.helpers import serving

MiB = 1024 * 1024
SMALL = 1000  # bytes: more than any refusal needs, far less than what was sent


# ----------------------------------------------------------------------------- body and headers


def test_json_body_over_a_mebibyte_gets_a_small_413(client: TestClient) -> None:
    body = json.dumps({"email": "a" * (2 * MiB) + "@example.org"}).encode()
    response = client.post(
        "/api/v1/subscribe", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert len(response.content) < SMALL


def test_chunked_body_is_counted_as_it_arrives(client: TestClient) -> None:
    sent = 0

    def chunks() -> Iterator[bytes]:  # no Content-Length: the body arrives chunked
        nonlocal sent
        yield b'{"email": "'
        for _ in range(40):
            sent += 64 * 1024
            yield b"a" * (64 * 1024)
        yield b'@example.org"}'

    response = client.post(
        "/api/v1/subscribe", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert len(response.content) < SMALL


def test_form_body_over_the_limit_is_refused(client: TestClient) -> None:
    response = client.post("/subscribe", data={"email": "x@example.org", "name": "n" * 2 * MiB})
    assert response.status_code == 413
    assert len(response.content) < SMALL


def test_huge_header_gets_431(client: TestClient) -> None:
    assert client.get("/healthz", headers={"x-filler": "a" * 15_000}).status_code == 200
    response = client.get("/healthz", headers={"x-filler": "a" * 20_000})
    assert response.status_code == 431
    assert len(response.content) < SMALL
    many = {f"x-filler-{n}": "a" * 100 for n in range(200)}  # 200 small headers add up
    assert client.get("/healthz", headers=many).status_code == 431


def test_422_does_not_echo_a_large_input(client: TestClient) -> None:
    response = client.post("/api/v1/subscribe", json={"email": "x" * 500_000})
    assert response.status_code == 422
    assert len(response.content) < SMALL
    assert "xxxxxxxxxx" not in response.text
    (error,) = response.json()["detail"]
    assert error["loc"] == ["body", "email"]
    assert error["type"] == "string_too_long"
    assert "input" not in error


# ----------------------------------------------------------------------------- malformed: 4xx


def test_if_modified_since_with_a_huge_year_is_ignored(client: TestClient) -> None:
    for since in ("Mon, 01 Jan 99999999999 00:00:00 GMT", "Mon, 01 Jan 99999 00:00:00 GMT"):
        response = client.get("/feed.rss", headers={"If-Modified-Since": since})
        assert response.status_code == 200, since


def test_broken_json_sign_up_is_a_4xx(client: TestClient) -> None:
    json_type = {"content-type": "application/json"}
    for path in ("/api/v1/subscribe", "/subscribe"):
        response = client.post(path, content=b"{", headers=json_type)
        assert 400 <= response.status_code < 500, path
        assert len(response.content) < SMALL


def test_lone_surrogate_in_an_email_is_a_4xx(client: TestClient) -> None:
    json_type = {"content-type": "application/json"}
    for path in ("/api/v1/subscribe", "/subscribe"):
        for body in (
            b'{"email": "a\\ud800@example.org"}',
            b'{"email": "a@example.org", "name": "\\udfff"}',
        ):
            response = client.post(path, content=body, headers=json_type)
            assert 400 <= response.status_code < 500, (path, body)


def test_normalize_email_refuses_a_lone_surrogate_as_invalid_input() -> None:
    for raw in ("a\ud800@example.org", "a@exa\ud800mple.org", "\udfff"):
        with pytest.raises(InvalidInputError) as refused:
            normalize_email(raw)
        str(refused.value).encode("utf-8")  # the message can be shown


# ----------------------------------------------------------------------------- rate limits


class CountingDeque(deque[float]):
    """A deque that counts how often any of its kind is read by index: the timestamps a
    rate limiter looks at, whichever key they belong to."""

    reads = 0

    def __getitem__(self, index: int) -> float:  # type: ignore[override]
        CountingDeque.reads += 1
        return super().__getitem__(index)


def test_rate_limiter_state_and_work_stay_bounded_under_a_flood_of_keys(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ratelimit, "deque", CountingDeque)
    CountingDeque.reads = 0
    limiter = ratelimit.RateLimiter(5, 3600)
    for n in range(20_000):  # a flood of distinct clients, all inside the window
        assert limiter.allow(f"10.{n >> 16}.{(n >> 8) & 255}.{n & 255}")
        assert CountingDeque.reads <= 4 * (n + 1), f"key {n}: every key read"
    assert len(limiter) <= limiter.max_keys
    before = CountingDeque.reads
    for _ in range(10):
        limiter.allow("192.0.2.1")
    assert CountingDeque.reads - before <= 50  # its own timestamps only
    assert [limiter.allow("192.0.2.1") for _ in range(3)] == [False] * 3
    assert len(limiter) <= limiter.max_keys


def test_rate_limiter_forgets_the_least_recently_seen_key_first() -> None:
    limiter = ratelimit.RateLimiter(1, 3600, max_keys=3)
    for key in ("a", "b", "c"):
        assert limiter.allow(key)
    assert not limiter.allow("a")  # "a" is now the most recently seen
    assert limiter.allow("d")  # over the cap: "b" goes
    assert len(limiter) == 3
    assert limiter.allow("b")  # forgotten, so allowed again
    assert not limiter.allow("a") and not limiter.allow("d")


def test_client_key_is_the_ipv6_64_and_the_plain_ipv4() -> None:
    from newsletter.subscribers.ratelimit import client_key

    assert client_key("192.0.2.7") == "192.0.2.7"
    assert client_key("2001:db8:1:2::1") == client_key("2001:DB8:1:2:ffff:ffff:ffff:ffff")
    assert client_key("2001:db8:1:2::1") == "2001:db8:1:2::/64"
    assert client_key("2001:db8:1:3::1") != client_key("2001:db8:1:2::1")
    assert client_key("::ffff:192.0.2.7") == "192.0.2.7"
    assert client_key("testclient") == "testclient"
    assert client_key("not an address") == "not an address"


def test_addresses_in_one_64_share_a_limit() -> None:
    from newsletter.subscribers.ratelimit import client_key

    limiter = ratelimit.RateLimiter(2, 3600)
    assert limiter.allow(client_key("2001:db8:1:2::1"))
    assert limiter.allow(client_key("2001:db8:1:2::2"))
    assert not limiter.allow(client_key("2001:db8:1:2:dead:beef:0:1"))
    assert limiter.allow(client_key("2001:db8:1:3::1"))  # the next /64 is someone else


def test_sign_ups_from_one_ipv6_64_share_the_per_client_limit(
    settings: Settings, engine: sa.Engine
) -> None:
    strict = dataclasses.replace(
        settings, subscribers=SubscribersSettings(signups_per_ip_per_hour=2)
    )
    app = create_app(strict, engine)
    with TestClient(app, base_url=settings.base_url, client=("2001:db8:1:2::1", 4000)) as one:
        other = TestClient(app, base_url=settings.base_url, client=("2001:db8:1:2::99", 4000))
        elsewhere = TestClient(app, base_url=settings.base_url, client=("2001:db8:9::1", 4000))
        codes = [
            one.post("/api/v1/subscribe", json={"email": "a@example.org"}).status_code,
            one.post("/api/v1/subscribe", json={"email": "b@example.org"}).status_code,
            other.post("/api/v1/subscribe", json={"email": "c@example.org"}).status_code,
            elsewhere.post("/api/v1/subscribe", json={"email": "d@example.org"}).status_code,
        ]
    assert codes == [202, 202, 429, 202]


# ----------------------------------------------------------------------------- a real server


def connect(base: str) -> socket.socket:
    host, port = base.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    return sock


def answer(sock: socket.socket, seconds: float = 10) -> bytes:
    """Everything the server sends until it closes the connection (or `seconds` pass)."""
    sock.settimeout(seconds)
    data = b""
    with contextlib.suppress(ConnectionResetError, TimeoutError):
        while chunk := sock.recv(65536):
            data += chunk
    return data


def site(tmp_path: Path, database_url: str) -> tuple[Path, dict[str, str]]:
    assert CliRunner().invoke(main, ["init", str(tmp_path)]).exit_code == 0
    return tmp_path / "config.toml", {"NEWSLETTER_DATABASE__URL": database_url}


def test_newsletter_serve_refuses_big_bodies_and_heads(tmp_path: Path, database_url: str) -> None:
    config, env = site(tmp_path, database_url)
    with serving(config, env) as base:
        # a declared body over the limit: refused before it is sent
        with connect(base) as sock:
            sock.sendall(
                b"POST /api/v1/subscribe HTTP/1.1\r\nHost: t\r\n"
                b"Content-Type: application/json\r\nContent-Length: 2000000\r\n\r\n"
            )
            reply = answer(sock)
        assert reply.startswith(b"HTTP/1.1 413 "), reply[:100]
        assert len(reply) < 2 * SMALL

        # a header line that never ends: cut off after a bounded number of bytes
        with connect(base) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Filler: ")
            sent = 0
            while sent < 4 * MiB:
                try:
                    sock.sendall(b"a" * 8192)
                except (BrokenPipeError, ConnectionResetError):
                    break
                sent += 8192
                if select.select([sock], [], [], 0.05)[0]:
                    break
            reply = answer(sock)
        assert reply.startswith(b"HTTP/1.1 431 "), reply[:100]
        assert sent < 512 * 1024

        # 20 KB of headers pass the server's bound on the raw head and meet the app's
        response = httpx.get(base + "/healthz", headers={"x-filler": "a" * 20_000})
        assert response.status_code == 431

        response = httpx.post(base + "/api/v1/subscribe", json={"email": "x" * 500_000})
        assert response.status_code == 422
        assert len(response.content) < SMALL
        assert httpx.get(base + "/healthz").status_code == 200


def test_newsletter_serve_closes_slow_and_idle_connections(
    tmp_path: Path, database_url: str
) -> None:
    config, env = site(tmp_path, database_url)
    options = ("--header-timeout", "1", "--limit-concurrency", "4")
    with serving(config, env, None, "--no-scheduler", *options) as base:
        started = time.monotonic()
        with connect(base) as idle, connect(base) as slow:
            slow.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n")  # and never the end
            assert answer(idle, 5) == b""  # closed, without a word
            assert answer(slow, 5).startswith(b"HTTP/1.1 408 ")
        assert time.monotonic() - started < 4

        # connections held open count against --limit-concurrency until the timeout
        held = [connect(base) for _ in range(4)]
        try:
            assert httpx.get(base + "/healthz").status_code == 503
            for sock in held:
                assert answer(sock, 5) == b""
        finally:
            for sock in held:
                sock.close()
        assert httpx.get(base + "/healthz").status_code == 200
