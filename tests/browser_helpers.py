"""What the browser tests share beyond launching chromium (tests/test_browser.py): axe-core's
findings that fail a page, and running a CLI command to set a site up."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from newsletter.cli import main


def serious_violations(results: Any) -> list[str]:
    """axe-core's serious and critical violations, each with where it was found."""
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
        for v in results.response["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def run_cli(config: Path, env: Mapping[str, str], *args: str) -> str:
    """A `newsletter` command that must succeed; its output."""
    result = CliRunner().invoke(main, ["--config", str(config), *args], env=dict(env))
    assert result.exit_code == 0, result.output
    return result.output
