"""/api/v1 routes for taxonomy."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["taxonomy"])
