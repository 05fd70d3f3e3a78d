"""/api/v1 routes for articles."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["articles"])
