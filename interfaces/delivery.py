"""What one delivery attempt came to, and the transport interface the outbox worker drives."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

OutcomeKind = Literal["delivered", "rejected", "retry"]


@dataclass(frozen=True, slots=True)
class DeliveryOutcome:
    """``delivered``: acknowledged; ``rejected``: the destination refused it (dead letter, no blind retry);
    ``retry``: no answer we can trust (timeout, connection refused, malformed ACK): try again later.

    ``destination_down`` marks failures of the connection itself, which pause the whole destination
    instead of burning an attempt of every queued message.
    """

    kind: OutcomeKind
    code: str = ""
    detail: str = ""
    destination_down: bool = False


class Transport(Protocol):
    """Sends one prepared payload; one instance per worker lane (it may keep its connection open)."""

    async def send(self, payload: bytes, message_id: str) -> DeliveryOutcome: ...

    async def close(self) -> None: ...
