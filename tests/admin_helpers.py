"""What the /admin tests share: the [admin] account, the CSRF token of a page's forms, and
logging a test client in the way a browser does."""

from __future__ import annotations

import dataclasses
import re

from starlette.testclient import TestClient

from newsletter.config import AdminSettings, Settings

PASSWORD = "a long password 1"


def with_admin(settings: Settings) -> Settings:
    """`settings` with the [admin] account set, so /admin can be logged in to."""
    return dataclasses.replace(settings, admin=AdminSettings("admin", PASSWORD))


def csrf(page: str) -> str:
    """The CSRF token a page's forms carry."""
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, page
    return found.group(1)


def log_in(client: TestClient, name: str = "admin", password: str = PASSWORD) -> None:
    form = client.get("/admin/login")
    answer = client.post(
        "/admin/login",
        data={"csrf_token": csrf(form.text), "username": name, "password": password},
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text
