"""/api/v1 routes for digests."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["digests"])
