"""/admin pages: dashboard."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
