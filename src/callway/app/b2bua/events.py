"""Call events for the business back end: a small in-process publish/subscribe bus.

The B2BUA publishes one :class:`CallEvent` per step of a call (with one-line
hooks: :func:`publish` takes a channel); the admin server streams them as
JSON over ``GET /api/v1/events`` (a WebSocket).  Kinds, in the order a call
goes through them:

``call_started``, ``call_answered``, ``callback_held``,
``callback_connected`` / ``callback_timeout``, ``room_joined``,
``room_left``, ``call_ended`` (with the CDR ``disposition``).

Publishing never blocks and never raises: each subscriber has a bounded
queue, and a subscriber that does not keep up loses the oldest events (its
``dropped`` counter says how many) rather than slowing calls down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from callway.app.b2bua.channel import Channel

__all__ = ["KINDS", "CallEvent", "EventBus", "Subscription", "publish"]

log = logging.getLogger("callway.events")

KINDS = (
    "call_started",
    "call_answered",
    "call_ended",
    "callback_held",
    "callback_connected",
    "callback_timeout",
    "room_joined",
    "room_left",
)
QUEUE_SIZE = 1000


@dataclass(frozen=True, slots=True)
class CallEvent:
    """One step of one call."""

    kind: str
    call_id: str  # the channel's uniqueid (the CDR's)
    time: float
    data: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """``{"event": kind, "call_id": ..., "time": ..., **data}``."""
        return {"event": self.kind, "call_id": self.call_id, "time": self.time, **self.data}


class Subscription:
    """One listener's queue; iterate with :meth:`get`, stop with :meth:`close`."""

    def __init__(self, bus: EventBus, size: int = QUEUE_SIZE) -> None:
        self._bus = bus
        self.queue: asyncio.Queue[CallEvent] = asyncio.Queue(size)
        self.dropped = 0

    def put(self, event: CallEvent) -> None:
        """Queue ``event``; the oldest is dropped when the queue is full."""
        if self.queue.full():
            with contextlib.suppress(asyncio.QueueEmpty):
                self.queue.get_nowait()
            self.dropped += 1
        self.queue.put_nowait(event)

    async def get(self) -> CallEvent:
        """The next event (waits for one)."""
        return await self.queue.get()

    def close(self) -> None:
        """Stop receiving events."""
        self._bus.unsubscribe(self)


class EventBus:
    """Fan-out of call events to every subscriber."""

    def __init__(self) -> None:
        self._subscribers: set[Subscription] = set()
        self.published = 0

    def subscribe(self) -> Subscription:
        """A new subscription receiving every event published from now on."""
        sub = Subscription(self)
        self._subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        """Forget ``sub`` (idempotent)."""
        self._subscribers.discard(sub)

    @property
    def subscribers(self) -> int:
        """How many listeners there are."""
        return len(self._subscribers)

    def emit(self, kind: str, call_id: str, **data: Any) -> CallEvent:
        """Publish an event to every subscriber (never raises)."""
        event = CallEvent(kind, call_id, time.time(), data)
        self.published += 1
        for sub in list(self._subscribers):
            try:
                sub.put(event)
            except Exception:  # a broken subscriber must not break a call
                log.exception("event subscriber failed")
        return event


def publish(channel: Channel, kind: str, **data: Any) -> None:
    """The one-line hook: publish ``kind`` for ``channel`` on its service's bus, if any."""
    bus = getattr(channel.service, "events", None)
    if not isinstance(bus, EventBus):
        return
    if not bus._subscribers:  # nobody listens: count it, build nothing
        bus.published += 1
        return
    bus.emit(
        kind,
        channel.uid,
        caller=channel.endpoint.name,
        exten=channel.exten,
        **data,
    )
