"""The event bus: synchronous by default, background delivery in order when asked."""

from __future__ import annotations

import threading

from lis.events import EventBus, MessageQuarantined, ResultsIngested


def test_synchronous_delivery_in_publisher_thread() -> None:
    bus = EventBus()
    seen: list[tuple[int, str]] = []
    bus.subscribe(MessageQuarantined, lambda e: seen.append((e.raw_message_id, threading.current_thread().name)))
    bus.publish(MessageQuarantined(1, "xn-1", "bad"))
    assert seen == [(1, threading.current_thread().name)]


def test_background_delivery_keeps_order_and_isolates_failures() -> None:
    bus = EventBus()
    bus.deliver_in_background(ResultsIngested)
    seen: list[tuple[int, str]] = []

    def handler(event: ResultsIngested) -> None:
        if event.raw_message_id == 3:
            raise RuntimeError("a failing listener must not stop delivery")
        seen.append((event.raw_message_id, threading.current_thread().name))

    bus.subscribe(ResultsIngested, handler)
    for raw_id in range(1, 6):
        bus.publish(ResultsIngested(raw_id, "xn-1", (raw_id,)))
    bus.drain()
    assert [raw_id for raw_id, _ in seen] == [1, 2, 4, 5]
    assert {name for _, name in seen} == {"event-bus"}
    other: list[int] = []
    bus.subscribe(MessageQuarantined, lambda e: other.append(e.raw_message_id))
    bus.publish(MessageQuarantined(9, "xn-1", "x"))
    assert other == [9]  # other event types stay synchronous
