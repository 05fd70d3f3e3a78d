"""The links every email to a subscriber carries (pure: settings and the subscriber's id
and link key come in): unsubscribe and preferences pages, and the RFC 8058 headers."""

from __future__ import annotations

from urllib.parse import quote

from newsletter import tokens
from newsletter.config import Settings


def page(settings: Settings, name: str, token: str) -> str:
    return f"{settings.base_url}/{name}/{token}"


def unsubscribe_url(settings: Settings, subscriber_id: int, link_key: str) -> str:
    token = tokens.sign(settings.secret, "unsubscribe", subscriber_id, link_key, None)
    return page(settings, "unsubscribe", token)


def preferences_token(settings: Settings, subscriber_id: int, link_key: str) -> str:
    return tokens.sign(settings.secret, "preferences", subscriber_id, link_key, None)


def preferences_url(settings: Settings, subscriber_id: int, link_key: str) -> str:
    return page(settings, "preferences", preferences_token(settings, subscriber_id, link_key))


def unsubscribe_headers(settings: Settings, email: str, unsubscribe: str) -> dict[str, str]:
    """List-Unsubscribe (an https URL and a mailto) and List-Unsubscribe-Post, so mail
    clients offer one-click unsubscribe (RFC 8058)."""
    mailto = f"mailto:{settings.mail.from_address}?subject={quote('unsubscribe ' + email)}"
    return {
        "List-Unsubscribe": f"<{unsubscribe}>, <{mailto}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }
