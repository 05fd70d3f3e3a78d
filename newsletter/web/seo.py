"""What search engines and browsers ask a site for besides its pages."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
