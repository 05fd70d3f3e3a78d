"""Every route of the JSON API, read from its own OpenAPI schema: 401 without a token or
with a wrong or revoked one, 403 for a read token on a write, and a read token may read.
The public sign-up endpoint is the one route without a token."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from newsletter.models import Scope

PUBLIC = {("post", "/api/v1/subscribe")}
READS = {"get", "head"}


def _operations(client: TestClient) -> list[tuple[str, str]]:
    schema = client.get("/api/v1/openapi.json").json()
    found = []
    for path, methods in schema["paths"].items():
        for method in methods:
            if (method, path) not in PUBLIC:
                # any value will do: authorization is decided before the path is looked up
                found.append((method, re.sub(r"\{[^}]+\}", "1", path)))
    return found


@pytest.fixture
def tokens(client: TestClient) -> Iterator[dict[str, str]]:
    access = client.app.app.state.services.access  # type: ignore[attr-defined]
    yield {
        "read": access.create_token("reader", Scope.read),
        "write": access.create_token("writer", Scope.write),
        "revoked": access.create_token("gone", Scope.write),
    }


def test_the_schema_documents_the_api_and_only_the_api(client: TestClient) -> None:
    schema = client.get("/api/v1/openapi.json").json()
    assert schema["paths"], "no routes documented"
    assert all(path.startswith("/api/v1/") for path in schema["paths"])
    assert "bearer" in str(schema["components"]["securitySchemes"]).lower()
    docs = client.get("/api/v1/docs")
    assert docs.status_code == 200 and "/api/v1/openapi.json" in docs.text


def test_every_route_needs_a_valid_token(client: TestClient, tokens: dict[str, str]) -> None:
    access = client.app.app.state.services.access  # type: ignore[attr-defined]
    access.revoke_token("gone")
    operations = _operations(client)
    assert len(operations) >= 20, operations  # articles, tags, authors, digests, runs, subscribers
    for method, path in operations:
        bare = client.request(method, path)
        assert bare.status_code == 401, (method, path, bare.status_code, bare.text)
        assert bare.headers["www-authenticate"].startswith("Bearer")
        for token in ("nl_not-a-token", tokens["revoked"], tokens["write"][:-1]):
            wrong = client.request(method, path, headers={"Authorization": f"Bearer {token}"})
            assert wrong.status_code == 401, (method, path, wrong.status_code)
            assert 'error="invalid_token"' in wrong.headers["www-authenticate"]
        basic = client.request(method, path, headers={"Authorization": "Basic YWRtaW46eA=="})
        assert basic.status_code == 401, (method, path)


def test_a_read_token_reads_and_may_not_write(client: TestClient, tokens: dict[str, str]) -> None:
    read = {"Authorization": f"Bearer {tokens['read']}"}
    for method, path in _operations(client):
        answer = client.request(method, path, headers=read)
        if method in READS:
            assert answer.status_code not in (401, 403), (method, path, answer.text)
        else:
            assert answer.status_code == 403, (method, path, answer.status_code)
            assert "--scope write" in answer.json()["detail"]


def test_sign_up_stays_public(client: TestClient) -> None:
    answer = client.post("/api/v1/subscribe", json={"email": "reader@example.org"})
    assert answer.status_code == 202
