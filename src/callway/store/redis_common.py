"""What the Redis-backed stores share: the client, a queued writer with back-off, the close.

Both :mod:`callway.store.redis_location` and :mod:`callway.store.redis_state`
queue their writes in memory and let one writer task send them, so the call
path never waits for Redis; an outage is retried with exponential back-off
(0.2 s doubling up to 5 s) and nothing queued is lost meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterable

import redis.asyncio as aioredis
from redis.exceptions import RedisError

RETRY_FIRST = 0.2
RETRY_MAX = 5.0
CLOSE_TIMEOUT = 2.0
SOCKET_TIMEOUT = 2.0


def connect(url: str) -> aioredis.Redis:
    """A client for ``url`` (connects lazily) whose commands give up after 2 s."""
    return aioredis.Redis.from_url(url, socket_timeout=SOCKET_TIMEOUT,
                                   socket_connect_timeout=SOCKET_TIMEOUT)  # fmt: skip


class Backoff:
    """Exponential retry delay: 0.2 s, doubling up to :data:`RETRY_MAX`."""

    def __init__(self) -> None:
        self.delay = RETRY_FIRST

    def reset(self) -> None:
        self.delay = RETRY_FIRST

    async def wait(self) -> None:
        await asyncio.sleep(self.delay)
        self.delay = min(self.delay * 2, RETRY_MAX)


async def queued_writer(
    wake: asyncio.Event,
    attempt: Callable[[], Awaitable[None]],
    failed: Callable[[BaseException], None],
) -> None:
    """Run ``attempt`` whenever ``wake`` is set; on a Redis error, report and retry later."""
    backoff = Backoff()
    while True:
        await wake.wait()
        wake.clear()
        try:
            await attempt()
            backoff.reset()
        except (RedisError, OSError) as exc:
            failed(exc)
            await backoff.wait()
            wake.set()


async def shut_down(
    client: aioredis.Redis | None,
    tasks: Iterable[asyncio.Task[None]],
    last: Callable[[], Awaitable[None]],
) -> None:
    """Run ``last`` (a final flush) for up to 2 s, stop ``tasks``, disconnect."""
    with contextlib.suppress(TimeoutError, RedisError, OSError):
        await asyncio.wait_for(last(), CLOSE_TIMEOUT)
    for task in tasks:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    if client is not None:
        with contextlib.suppress(RedisError, OSError):
            await client.aclose()
