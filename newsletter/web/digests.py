"""The public archive of digests: issue pages, each digest's list of issues with a sign-up
form, and each digest's feeds of issues."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
