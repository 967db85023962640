"""The in-process event bus (ARCHITECTURE.md principle 5).

Events are published after the transaction that caused them commits. Handlers run synchronously in the
publisher's thread; a failing handler is logged and never breaks the publisher (the database stays the
source of truth: a listener that missed an event catches up from the tables).
"""

from __future__ import annotations

import logging
import queue
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


@dataclass(frozen=True, slots=True)
class ResultReleased:
    """Results released (by a validator, a batch, or autoverification with auto-release), after the commit.

    ``correction`` is True for amended revisions released after an earlier release (HL7 OBX-11 ``C``).
    """

    result_ids: tuple[int, ...]
    order_ids: tuple[int, ...] = ()
    correction: bool = False
    released_by: str = ""


@dataclass(frozen=True, slots=True)
class QcRunEvaluated:
    """Published after the transaction that decided a QC run commits."""

    run_id: int
    instrument: str
    test_code: str
    decision: str
    holds_opened: tuple[int, ...] = ()
    holds_lifted: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class QcHoldsChanged:
    """Published after holds were opened or lifted outside a run (periodic check, corrective action)."""

    opened: tuple[int, ...] = ()
    lifted: tuple[int, ...] = ()


Handler = Callable[[Any], None]


class EventBus:
    """Subscribe by event class; ``publish`` calls every handler for that class.

    By default handlers run in the publisher's thread. :meth:`deliver_in_background` moves the delivery
    of chosen event types to one background thread (in publication order): the server does this for
    ``ResultsIngested`` so that evaluation and QC never run on the analyser links' journal writer, where
    they would delay the next acknowledgement.
    """

    def __init__(self) -> None:
        self._handlers: dict[type, list[Handler]] = defaultdict(list)
        self._lock = threading.Lock()
        self._background: set[type] = set()
        self._queue: queue.Queue[Any] | None = None
        self._thread: threading.Thread | None = None

    def subscribe(self, event_type: type, handler: Handler) -> Callable[[], None]:
        with self._lock:
            self._handlers[event_type].append(handler)

        def unsubscribe() -> None:
            with self._lock:
                if handler in self._handlers[event_type]:
                    self._handlers[event_type].remove(handler)

        return unsubscribe

    def deliver_in_background(self, *event_types: type) -> None:
        with self._lock:
            self._background.update(event_types)
            if self._thread is None:
                self._queue = queue.Queue()
                self._thread = threading.Thread(target=self._deliver_loop, name="event-bus", daemon=True)
                self._thread.start()

    def drain(self, timeout: float = 30.0) -> None:
        """Wait until every event queued for background delivery has been handled."""
        if self._queue is not None:
            done = threading.Event()
            self._queue.put(done)
            done.wait(timeout)

    def publish(self, event: Any) -> None:
        if self._queue is not None and type(event) in self._background:
            self._queue.put(event)
            return
        self._deliver(event)

    def _deliver_loop(self) -> None:
        assert self._queue is not None
        while True:
            event = self._queue.get()
            if isinstance(event, threading.Event):
                event.set()
            else:
                self._deliver(event)

    def _deliver(self, event: Any) -> None:
        with self._lock:
            handlers = list(self._handlers.get(type(event), ()))
        for handler in handlers:
            try:
                handler(event)
            except Exception:
                log.exception("event handler %r failed on %s", handler, type(event).__name__)
