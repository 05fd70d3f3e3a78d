"""Where the files shipped beside the code live: templates/ and the sample config.toml.

In a checkout they sit at the repository root; an installed wheel carries them inside the
package (pyproject.toml force-includes them), so both places are tried.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from jinja2 import Environment, FileSystemLoader, select_autoescape

if TYPE_CHECKING:
    from newsletter.config import Settings

_PACKAGE = Path(__file__).resolve().parent


def _find(name: str) -> Path:
    for candidate in (_PACKAGE / name, _PACKAGE.parent / name):
        if candidate.exists():
            return candidate
    raise FileNotFoundError(f"{name} is missing from the installation")


def templates_dir() -> Path:
    return _find("templates")


def sample_config_path() -> Path:
    return _find("config.toml")


def template_environment(settings: Settings) -> Environment:
    """Jinja2 for pages and emails: .html autoescaped, .txt not; dates in the site's zone."""
    env = Environment(
        loader=FileSystemLoader(templates_dir()),
        autoescape=select_autoescape(["html", "xml"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    tz = settings.site.tz

    def localdate(value: datetime | None, fmt: str = "%-d %B %Y") -> str:
        """A UTC datetime shown in the publication's time zone."""
        return value.astimezone(tz).strftime(fmt) if value else ""

    env.filters["localdate"] = localdate
    env.globals["site"] = settings.site
    env.globals["base_url"] = settings.base_url
    return env
