"""/api/v1 routes for subscribers."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["subscribers"])
