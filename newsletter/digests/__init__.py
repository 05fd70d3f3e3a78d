"""Digests: editors' definitions, schedules, issues and their runs.

schedule.py (pure) finds firings on a zone's wall clock; definitions.py (pure) checks what
an editor asks for; compose.py (pure) narrows, segments and renders issues; service.py holds
the use cases (define, preview, test, send now, the scheduler's tick, runs, the archive).
"""

from newsletter.digests.service import (
    DigestDetail,
    DigestView,
    Preview,
    RunPage,
    RunProgress,
    RunView,
)

__all__ = ["DigestDetail", "DigestView", "Preview", "RunPage", "RunProgress", "RunView"]
