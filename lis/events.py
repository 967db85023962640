"""The in-process event bus (ARCHITECTURE.md principle 5).

Events are published after the transaction that caused them commits. Handlers run synchronously in the
publisher's thread; a failing handler is logged and never breaks the publisher (the database stays the
source of truth: a listener that missed an event catches up from the tables).
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ResultsIngested:
    raw_message_id: int
    instrument: str
    result_ids: tuple[int, ...]
    qc_result_ids: tuple[int, ...] = ()
    unmatched_ids: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class MessageQuarantined:
    raw_message_id: int
    instrument: str
    error: str


@dataclass(frozen=True, slots=True)
class OrderReceived:
    order_id: int
    specimen_barcodes: tuple[str, ...] = field(default_factory=tuple)


Handler = Callable[[Any], None]


class EventBus:
    """Subscribe by event class; ``publish`` calls every handler for that class."""

    def __init__(self) -> None:
        self._handlers: dict[type, list[Handler]] = defaultdict(list)
        self._lock = threading.Lock()

    def subscribe(self, event_type: type, handler: Handler) -> Callable[[], None]:
        with self._lock:
            self._handlers[event_type].append(handler)

        def unsubscribe() -> None:
            with self._lock:
                if handler in self._handlers[event_type]:
                    self._handlers[event_type].remove(handler)

        return unsubscribe

    def publish(self, event: Any) -> None:
        with self._lock:
            handlers = list(self._handlers.get(type(event), ()))
        for handler in handlers:
            try:
                handler(event)
            except Exception:
                log.exception("event handler %r failed on %s", handler, type(event).__name__)
