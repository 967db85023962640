"""Live updates: bus events (published from worker threads) pushed into one page's UI safely.

The bus handler only appends to a thread-safe deque; a ``ui.timer`` in the page's client drains it in
the event loop and calls the page's callback. The subscription ends when the client is deleted
(browser tab closed or navigated away).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from nicegui import context, ui

from lis.events import EventBus


def subscribe(bus: EventBus, event_types: Iterable[type], callback: Callable[[list[Any]], None], *,
              interval: float = 0.25) -> None:
    """Call ``callback(events)`` in the page's context with the events that arrived since the last call."""
    pending: deque[Any] = deque()
    unsubscribers = [bus.subscribe(kind, pending.append) for kind in event_types]

    def drain() -> None:
        if not pending:
            return
        events = []
        while pending:
            events.append(pending.popleft())
        callback(events)

    ui.timer(interval, drain)

    def stop() -> None:
        for unsubscribe in unsubscribers:
            unsubscribe()

    context.client.on_delete(stop)
