"""Golden files: expected output kept under tests/golden/ and compared byte for byte.

    assert_golden("feeds/site.rss", rendered)

With UPDATE_GOLDEN=1 in the environment the files are written instead (see
docs/golden-files.md); review `git diff tests/golden` before committing them.
"""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path

import pytest

GOLDEN_DIR = Path(__file__).parent / "golden"
UPDATE_COMMAND = "UPDATE_GOLDEN=1 ./scripts/test -k golden"
DIFF_LINES = 60


def assert_golden(name: str, actual: bytes) -> None:
    """`actual` must equal tests/golden/<name> byte for byte (UPDATE_GOLDEN=1: write it)."""
    path = GOLDEN_DIR / name
    shown = f"tests/golden/{name}"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        if not path.exists() or path.read_bytes() != actual:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(actual)
            print(f"golden file written: {shown}")
        return
    if not path.exists():
        pytest.fail(
            f"{shown} does not exist; create it with `{UPDATE_COMMAND}`, "
            "then read it before committing it",
            pytrace=False,
        )
    expected = path.read_bytes()
    if actual != expected:
        pytest.fail(
            f"output differs from {shown} ({len(expected)} bytes expected, {len(actual)} "
            f"given). If the change is intended, run `{UPDATE_COMMAND}` and review "
            "`git diff tests/golden`.\n" + _diff(expected, actual, shown),
            pytrace=False,
        )


def _lines(data: bytes) -> list[str]:
    """The text for a diff, one-line feeds broken between tags and JSON members."""
    text = data.decode("utf-8", errors="backslashreplace")
    return [line + "\n" for line in re.split(r"\n|(?<=>)(?=<)|(?<=,)(?=\")", text)]


def _diff(expected: bytes, actual: bytes, shown: str) -> str:
    diff = list(
        difflib.unified_diff(
            _lines(expected), _lines(actual), f"{shown} (expected)", f"{shown} (actual)"
        )
    )
    more = f"... {len(diff) - DIFF_LINES} more diff lines\n" if len(diff) > DIFF_LINES else ""
    return "".join(diff[:DIFF_LINES]) + more
