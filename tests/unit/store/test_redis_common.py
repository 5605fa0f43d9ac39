"""The queued writer shared by the Redis stores: retries after an outage, loses nothing."""

from __future__ import annotations

import asyncio

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from callway.store import redis_common
from callway.store.redis_common import Backoff, queued_writer


def test_backoff_doubles_up_to_the_cap_and_resets(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []

    async def fake_sleep(delay: float) -> None:
        slept.append(delay)

    monkeypatch.setattr(redis_common.asyncio, "sleep", fake_sleep)
    backoff = Backoff()

    async def main() -> None:
        for _ in range(8):
            await backoff.wait()
        backoff.reset()
        await backoff.wait()

    asyncio.run(main())
    assert slept == [0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0, 5.0, 0.2]


def test_writer_retries_until_written_and_reports_each_failure(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(redis_common, "RETRY_FIRST", 0.001)
    outcomes: list[str] = []
    failures: list[BaseException] = []

    async def attempt() -> None:
        if len(outcomes) < 2:
            outcomes.append("failed")
            raise RedisConnectionError("down")
        outcomes.append("written")

    async def main() -> None:
        wake = asyncio.Event()
        task = asyncio.create_task(queued_writer(wake, attempt, failures.append))
        wake.set()  # one write queued: the writer must keep trying until it succeeds
        async with asyncio.timeout(2.0):
            while outcomes[-1:] != ["written"]:
                await asyncio.sleep(0.001)
        task.cancel()

    asyncio.run(main())
    assert outcomes == ["failed", "failed", "written"]
    assert [str(exc) for exc in failures] == ["down", "down"]
