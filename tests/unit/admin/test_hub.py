"""The dashboard hub builds its periodic sample of the calls without holding the loop."""

from __future__ import annotations

import asyncio

from callway.admin.metrics import Metrics
from callway.admin.server import CALLS_PER_STEP, LiveHub
from tests.unit.admin.fakes import FakeBackend, call


def test_the_periodic_sample_yields_to_the_loop_between_steps() -> None:
    backend = FakeBackend(active=[call(f"{n:08d}") for n in range(4 * CALLS_PER_STEP + 3)])
    hub = LiveHub(backend, Metrics(backend))
    turns = 0

    async def other_work() -> None:  # stands for the relay's packets
        nonlocal turns
        while True:
            turns += 1
            await asyncio.sleep(0)

    async def main() -> None:
        other = asyncio.ensure_future(other_work())
        await asyncio.sleep(0)
        before = turns
        await hub.broadcast()  # no page connected: the metrics sample only
        other.cancel()
        assert turns - before >= 4  # the other task ran between the steps
        assert hub.metrics.active_calls._value.get() == len(backend.active)

    asyncio.run(main())
