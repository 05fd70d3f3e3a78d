"""Where the files shipped beside the code live: templates/ and the sample config.toml.

In a checkout they sit at the repository root; an installed wheel carries them inside the
package (pyproject.toml force-includes them), so both places are tried.
"""

from __future__ import annotations

from pathlib import Path

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
