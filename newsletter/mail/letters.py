"""What a use case wants to say (a Letter), and its text and HTML bodies rendered from
templates/email/<name>.{txt,html}."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from jinja2 import Environment


@dataclass(frozen=True)
class Letter:
    """What a use case wants to say; `compose` turns it into an Envelope."""

    to: str
    to_name: str
    subject: str
    text: str
    html: str
    headers: Mapping[str, str] = field(default_factory=dict)
    message_id: str | None = None  # given when a resend must carry the same id
    inlined: bool = False  # the HTML's CSS is inlined already (a digest, once per segment)


def render_bodies(
    templates: Environment, name: str, context: Mapping[str, object]
) -> tuple[str, str]:
    """The plain-text and HTML bodies of email template `name`."""
    text = templates.get_template(f"email/{name}.txt").render(context)
    html = templates.get_template(f"email/{name}.html").render(context)
    return text, html
