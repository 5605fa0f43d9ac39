"""Registrations shared by PBX nodes through Redis (``[store] url = "redis://..."``).

Every node keeps a full in-memory mirror of the location service (so the
registrar and Dial stay synchronous and fast) and Redis is the shared truth:

* a binding is one key ``PREFIX:reg:AOR:HASH`` holding its JSON, with a Redis
  TTL equal to its expiry, so expiration is enforced by the data, not by one
  node's timer (a dead node's registrations stay valid for the others);
* every change is published on ``PREFIX:location`` with the writer's node id;
  the other nodes apply it to their mirrors;
* on (re)connection a node first pushes what it changed while Redis was away,
  then reloads every key (SCAN), so the mirrors converge.

Redis unavailable: one clear log line per outage, the node keeps serving from
its mirror, and reconnects with back-off without a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
from collections.abc import Iterable
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from callway.core.address import Address
from callway.pbx.location import Binding, Location
from callway.store.redis_common import Backoff, connect, queued_writer, shut_down

log = logging.getLogger("callway.store.redis")


def binding_to_json(binding: Binding) -> str:
    """A binding as JSON (the shared wire form)."""
    source = binding.source
    return json.dumps(
        {
            "aor": binding.aor, "uri": binding.uri, "expires_at": binding.expires_at,
            "call_id": binding.call_id, "cseq": binding.cseq,
            "source": [source.transport, source.host, source.port, source.local],
            "registered_at": binding.registered_at, "path": list(binding.path),
            "user_agent": binding.user_agent, "instance": binding.instance,
            "reg_id": binding.reg_id, "params": binding.params,
        }
    )  # fmt: skip


def binding_from_json(text: str | bytes) -> Binding:
    """The inverse of :func:`binding_to_json`."""
    data: dict[str, Any] = json.loads(text)
    transport, host, port, local = data["source"]
    return Binding(
        aor=data["aor"],
        uri=data["uri"],
        expires_at=float(data["expires_at"]),
        call_id=data["call_id"],
        cseq=int(data["cseq"]),
        source=Address(transport, host, int(port), tuple(local) if local else None),
        registered_at=float(data["registered_at"]),
        path=tuple(data.get("path", ())),
        user_agent=data.get("user_agent", ""),
        instance=data.get("instance", ""),
        reg_id=data.get("reg_id", ""),
        params=data.get("params", ""),
    )


class RedisReplicator:
    """A :class:`~callway.pbx.location.LocationStore` that writes to Redis."""

    def __init__(self, url: str, node_id: str, prefix: str = "callway") -> None:
        self.url = url
        self.node_id = node_id
        self.prefix = prefix
        self.channel = f"{prefix}:location"
        self.location: ReplicatedLocation | None = None
        self.connected = False
        self._pending: dict[tuple[str, str], Binding | None] = {}
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._client: aioredis.Redis | None = None

    def key(self, aor: str, uri: str) -> str:
        """The Redis key of one binding."""
        digest = hashlib.sha1(uri.encode(), usedforsecurity=False).hexdigest()[:20]
        return f"{self.prefix}:reg:{aor}:{digest}"

    # -- LocationStore ------------------------------------------------------------

    def save(self, binding: Binding) -> None:
        """Queue a write (sent by the writer task)."""
        self._pending[(binding.aor, binding.uri)] = binding
        self._wake.set()

    def delete(self, aor: str, uri: str) -> None:
        """Queue a delete."""
        self._pending[(aor, uri)] = None
        self._wake.set()

    def load(self) -> Iterable[Binding]:
        """Nothing synchronously: the mirror is filled by :meth:`start`."""
        return ()

    # -- lifecycle ------------------------------------------------------------------

    async def start(self, location: ReplicatedLocation, timeout: float = 3.0) -> None:
        """Connect, load the shared bindings (waits up to ``timeout``), start syncing."""
        self.location = location
        self._client = connect(self.url)
        loop = asyncio.get_running_loop()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._sync(), timeout)
        self._tasks = [loop.create_task(self._writer()), loop.create_task(self._subscriber())]

    async def close(self) -> None:
        """Flush briefly and disconnect."""
        await shut_down(self._client, self._tasks, self._flush)

    # -- sync -------------------------------------------------------------------------

    def _lost(self, exc: BaseException) -> None:
        if self.connected:
            log.error("redis unavailable (%s): serving from local state, reconnecting", exc)
        self.connected = False

    async def _sync(self) -> None:
        """Push local changes, then mirror every shared binding."""
        assert self._client is not None and self.location is not None
        await self._flush()
        found: list[Binding] = []
        async for key in self._client.scan_iter(match=f"{self.prefix}:reg:*", count=500):
            value = await self._client.get(key)
            if value is not None:
                with contextlib.suppress(ValueError, KeyError, TypeError):
                    found.append(binding_from_json(value))
        self.location.replace_all(found, time.time())
        if not self.connected:
            log.info("redis %s connected: %d shared registrations", self.url, len(found))
        self.connected = True

    async def _flush(self) -> None:
        if not self._pending or self._client is None:
            return
        pending, self._pending = self._pending, {}
        try:
            now = time.time()
            async with self._client.pipeline(transaction=False) as pipe:
                for (aor, uri), binding in pending.items():
                    key = self.key(aor, uri)
                    if binding is None or binding.expires_at <= now:
                        pipe.delete(key)
                        message = {"node": self.node_id, "op": "del", "aor": aor, "uri": uri}
                    else:
                        ttl_ms = max(1, int((binding.expires_at - now) * 1000))
                        pipe.set(key, binding_to_json(binding), px=ttl_ms)
                        message = {"node": self.node_id, "op": "put",
                                   "binding": binding_to_json(binding)}  # fmt: skip
                    pipe.publish(self.channel, json.dumps(message))
                await pipe.execute()
        except (RedisError, OSError) as exc:
            for item, binding in pending.items():  # keep them for the next attempt
                self._pending.setdefault(item, binding)
            raise exc

    async def _writer(self) -> None:
        await queued_writer(self._wake, self._push, self._lost)

    async def _push(self) -> None:
        if not self.connected:
            await self._sync()
        await self._flush()

    async def _subscriber(self) -> None:
        backoff = Backoff()
        while True:
            try:
                assert self._client is not None
                pubsub = self._client.pubsub()
                await pubsub.subscribe(self.channel)
                if not self.connected:
                    await self._sync()
                backoff.reset()
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        self._apply(message["data"])
            except (RedisError, OSError) as exc:
                self._lost(exc)
                await backoff.wait()

    def _apply(self, data: bytes | str) -> None:
        try:
            message = json.loads(data)
            if message.get("node") == self.node_id or self.location is None:
                return
            if message["op"] == "put":
                self.location.mirror_put(binding_from_json(message["binding"]))
            elif message["op"] == "del":
                self.location.mirror_remove(message["aor"], message["uri"])
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("ignoring a bad location message: %s", exc)


class ReplicatedLocation(Location):
    """A :class:`Location` whose writes go to Redis and which mirrors other nodes'."""

    def __init__(self, replicator: RedisReplicator) -> None:
        super().__init__(replicator)
        self.replicator = replicator

    def mirror_put(self, binding: Binding) -> None:
        """Apply another node's write (no write-back)."""
        self._bindings.setdefault(binding.aor, {})[binding.uri] = binding
        self._note(binding)

    def mirror_remove(self, aor: str, uri: str) -> None:
        """Apply another node's delete."""
        found = self._bindings.get(aor)
        if found is not None:
            found.pop(uri, None)
            if not found:
                del self._bindings[aor]

    def replace_all(self, bindings: list[Binding], now: float) -> None:
        """Take the shared state as the mirror (after a (re)connection)."""
        self._bindings.clear()
        for binding in bindings:
            if binding.expires_at > now:
                self.mirror_put(binding)

    def expire(self, now: float) -> list[Binding]:
        """Drop expired bindings from the mirror only: Redis TTLs expire the shared keys."""
        gone = self._due(now)
        for binding in gone:
            self.mirror_remove(binding.aor, binding.uri)
        return gone
