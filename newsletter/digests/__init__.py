"""Digests: editors' definitions, schedules, issues and their runs.

schedule.py (pure) finds firings on a zone's wall clock; definitions.py (pure) checks what
an editor asks for; compose.py (pure) narrows, segments and renders issues; service.py holds
the use cases (define, preview, test, send now, the scheduler's tick, composing and sending
runs, the archive) and runs.py those that follow runs (lists, progress, pause, resume,
cancel).
"""

from newsletter.digests.runs import RunPage, RunProgress, RunView
from newsletter.digests.service import DigestDetail, DigestView, Preview

__all__ = ["DigestDetail", "DigestView", "Preview", "RunPage", "RunProgress", "RunView"]
