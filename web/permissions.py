"""Permissions the web pages check, resolved against :mod:`lis.permissions` (the single source of truth).

A permission a newer service adds (e.g. ``outbox:retry``) is used when present; until then the page falls
back to the nearest existing one, never to "everyone".
"""

from __future__ import annotations

from lis.permissions import PERMISSIONS


def pick(*candidates: str) -> str:
    """The first candidate that lis.permissions defines (the last one is the fallback)."""
    return next((p for p in candidates if p in PERMISSIONS), candidates[-1])
