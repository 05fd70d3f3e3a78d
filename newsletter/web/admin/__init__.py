"""The editors' pages under /admin, server-rendered with Jinja2 (templates/admin/). Every
page but the login needs a logged-in editor (web.admin.common.editor); every form carries
a CSRF token. Scripts only refresh progress and previews: every action is a plain form."""

from fastapi import APIRouter

from newsletter.web.admin import articles, dashboard, digests, login, runs, subscribers
from newsletter.web.admin.common import Editor

router = APIRouter(include_in_schema=False)
router.include_router(login.router, prefix="/admin")
# the dashboard's path is /admin itself, so it is included with the prefix here
router.include_router(dashboard.router, prefix="/admin", dependencies=[Editor])
editors_only = APIRouter(prefix="/admin", dependencies=[Editor])
for module in (digests, runs, subscribers, articles):
    editors_only.include_router(module.router)
router.include_router(editors_only)

__all__ = ["router"]
