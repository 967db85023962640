"""Live connection status of each analyser link (the instruments page and ``GET /instruments``).

Transports report into one :class:`StatusBoard`; readers take snapshots. In memory only: a restart
starts from "disconnected", which is the truth after a restart.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from lis.models import utcnow


@dataclass
class LinkStatus:
    name: str
    state: str = "stopped"  # stopped | listening | connecting | connected | disconnected | error
    peer: str = ""
    connected_since: datetime | None = None
    last_message_at: datetime | None = None
    messages: int = 0
    errors: int = 0
    last_error: str = ""
    last_error_at: datetime | None = None
    backlog: int = 0  # messages acknowledged (in the journal spool) and not yet stored in the database
    extra: dict[str, Any] = field(default_factory=dict)


class StatusBoard:
    def __init__(self) -> None:
        self._links: dict[str, LinkStatus] = {}
        self._lock = threading.Lock()

    def _get(self, name: str) -> LinkStatus:
        return self._links.setdefault(name, LinkStatus(name))

    def set_state(self, name: str, state: str, peer: str = "") -> None:
        with self._lock:
            link = self._get(name)
            if state == "connected" and link.state != "connected":
                link.connected_since = utcnow()
            link.state, link.peer = state, peer or link.peer

    def message(self, name: str) -> None:
        with self._lock:
            link = self._get(name)
            link.messages += 1
            link.last_message_at = utcnow()

    def error(self, name: str, text: str) -> None:
        with self._lock:
            link = self._get(name)
            link.errors += 1
            link.last_error, link.last_error_at = text[:500], utcnow()

    def backlog(self, name: str, count: int) -> None:
        with self._lock:
            self._get(name).backlog = count

    def snapshot(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {name: asdict(link) for name, link in self._links.items()}
