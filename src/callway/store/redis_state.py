"""Call state shared by PBX nodes through Redis: dialog and room ownership.

* **Dialogs**: ``PREFIX:dialog:CALL-ID`` -> node id, with a TTL (the longest a
  call may last; deleted when the call ends).  Written from a queue by a
  writer task, so the call path never waits for Redis; :meth:`dialog_node`
  tells which node carries a call (a node that receives an in-dialog request
  for a call it does not know can tell where it lives).
* **Rooms**: ``PREFIX:room:NAME`` -> ``{"node": id, "uri": "sip:host:port"}``
  claimed atomically (``SET NX``) by the first node that opens the room, with
  a short TTL refreshed while the room lives on that node and deleted (only
  if still ours) when it ends.  A node dies: its claims lapse within the TTL.

Routing a joiner who lands on another node: the PBX answers **302 Moved
Temporarily** with ``Contact: <sip:ROOM@OWNER-HOST:PORT>`` (the room's node,
from the claim).  That is the simplest option that works with any balancer
algorithm; the joiner's phone follows the redirect (RFC 3261 §8.1.3.4), so
phones must be able to reach the nodes' addresses.

Redis unavailable: every call here fails soft (a lookup answers ``None``, a
claim answers "ours"), so a node keeps serving its own rooms; queued dialog
writes are retried on the next flush.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from callway.store.redis_common import connect, queued_writer, shut_down

log = logging.getLogger("callway.store.redis")

DIALOG_TTL = 4 * 3600.0  # the longest call we expect, seconds
ROOM_TTL = 15.0  # a room's claim lapses this long after its node stops refreshing it
LOOKUP_TIMEOUT = 0.5

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
_REFRESH = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""


@dataclass(frozen=True, slots=True)
class RoomOwner:
    """The node a room lives on, and that node's SIP address."""

    node: str
    uri: str

    def to_json(self) -> str:
        return json.dumps({"node": self.node, "uri": self.uri}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> RoomOwner:
        data = json.loads(text)
        return cls(str(data["node"]), str(data.get("uri", "")))


class RedisState:
    """Dialog-to-node and room-to-node maps in Redis for one node."""

    def __init__(
        self,
        url: str,
        node_id: str,
        prefix: str = "callway",
        *,
        uri: str = "",
        dialog_ttl: float = DIALOG_TTL,
        room_ttl: float = ROOM_TTL,
    ) -> None:
        self.url = url
        self.node_id = node_id
        self.prefix = prefix
        self.uri = uri  # this node's SIP address, for redirects to its rooms
        self.dialog_ttl = dialog_ttl
        self.room_ttl = room_ttl
        self.owned_rooms: set[str] = set()
        self.live_rooms: Callable[[], Iterable[str]] = lambda: ()
        self._pending: dict[str, tuple[str, float] | None] = {}
        self._wake = asyncio.Event()
        self._client: aioredis.Redis | None = None
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def me(self) -> RoomOwner:
        return RoomOwner(self.node_id, self.uri)

    def dialog_key(self, call_id: str) -> str:
        return f"{self.prefix}:dialog:{call_id}"

    def room_key(self, room: str) -> str:
        return f"{self.prefix}:room:{room}"

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self, live_rooms: Callable[[], Iterable[str]] | None = None) -> None:
        """Connect (lazily) and start the writer and room-refresh tasks."""
        if live_rooms is not None:
            self.live_rooms = live_rooms
        self._client = connect(self.url)
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._writer()), loop.create_task(self._refresher())]

    async def close(self) -> None:
        """Release our rooms, flush briefly, disconnect."""
        await shut_down(self._client, self._tasks, self._shutdown)

    async def _shutdown(self) -> None:
        for room in list(self.owned_rooms):
            await self.release_room(room)
        await self._flush()

    # -- dialogs ------------------------------------------------------------------------

    def record_dialog(self, call_id: str, node: str | None = None,
                      ttl: float | None = None) -> None:  # fmt: skip
        """Queue ``call_id`` -> ``node`` (this node by default) with a TTL."""
        self._pending[call_id] = (node or self.node_id, ttl or self.dialog_ttl)
        self._wake.set()

    def forget_dialog(self, call_id: str) -> None:
        """Queue the delete of a finished call's ownership."""
        self._pending[call_id] = None
        self._wake.set()

    async def dialog_node(self, call_id: str) -> str | None:
        """The node carrying ``call_id`` (None: unknown, or Redis unavailable)."""
        value = await self._get(self.dialog_key(call_id))
        return value.decode() if value is not None else None

    async def _flush(self) -> None:
        if not self._pending or self._client is None:
            return
        pending, self._pending = self._pending, {}
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                for call_id, entry in pending.items():
                    if entry is None:
                        pipe.delete(self.dialog_key(call_id))
                    else:
                        node, ttl = entry
                        pipe.set(self.dialog_key(call_id), node, px=max(1, int(ttl * 1000)))
                await pipe.execute()
        except (RedisError, OSError):
            for call_id, entry in pending.items():
                self._pending.setdefault(call_id, entry)
            raise

    async def _writer(self) -> None:
        await queued_writer(self._wake, self._flush, self._not_written)

    @staticmethod
    def _not_written(exc: BaseException) -> None:
        log.warning("redis: call state not written (%s), retrying", exc)

    # -- rooms --------------------------------------------------------------------------

    async def room_node(self, room: str) -> RoomOwner | None:
        """Who holds ``room`` (None: nobody, or Redis unavailable)."""
        value = await self._get(self.room_key(room))
        if value is None:
            return None
        try:
            return RoomOwner.from_json(value)
        except (ValueError, KeyError, TypeError):
            return None

    async def claim_room(self, room: str, node: str | None = None) -> RoomOwner:
        """Claim ``room`` for ``node`` (this node) unless another holds it; the owner.

        Redis unavailable: this node (rooms keep working locally).
        """
        mine = RoomOwner(node or self.node_id, self.uri if node in (None, self.node_id) else "")
        if self._client is None:
            return mine
        key = self.room_key(room)
        try:
            async with asyncio.timeout(LOOKUP_TIMEOUT):
                ok = await self._client.set(key, mine.to_json(), nx=True,
                                            px=int(self.room_ttl * 1000))  # fmt: skip
                if ok:
                    if mine.node == self.node_id:
                        self.owned_rooms.add(room)
                    return mine
                value = await self._client.get(key)
        except (RedisError, OSError, TimeoutError) as exc:
            log.warning("redis: room %s not claimed (%s): serving it here", room, exc)
            return mine
        if value is None:  # lapsed in between: try once more
            return await self.claim_room(room, node)
        try:
            owner = RoomOwner.from_json(value)
        except (ValueError, KeyError, TypeError):
            return mine
        if owner.node == self.node_id:
            self.owned_rooms.add(room)
        return owner

    async def release_room(self, room: str) -> None:
        """Drop our claim on ``room`` (a claim by another node is left alone)."""
        self.owned_rooms.discard(room)
        if self._client is None:
            return
        with contextlib.suppress(RedisError, OSError, TimeoutError):
            async with asyncio.timeout(LOOKUP_TIMEOUT):
                await self._client.eval(_RELEASE, 1, self.room_key(room), self.me.to_json())

    async def refresh_rooms(self) -> None:
        """Refresh the TTL of our live rooms; release the ones that ended."""
        if self._client is None:
            return
        live = set(self.live_rooms())
        for room in list(self.owned_rooms):
            if room not in live:
                await self.release_room(room)
                continue
            ttl_ms = str(int(self.room_ttl * 1000))
            async with asyncio.timeout(LOOKUP_TIMEOUT):
                kept = await self._client.eval(_REFRESH, 1, self.room_key(room),
                                               self.me.to_json(), ttl_ms)  # fmt: skip
            if not kept:  # lapsed (Redis was away, or restarted): claim it again
                self.owned_rooms.discard(room)
                await self.claim_room(room)

    async def _refresher(self) -> None:
        while True:
            await asyncio.sleep(min(1.0, self.room_ttl / 3))
            try:
                await self.refresh_rooms()
            except (RedisError, OSError, TimeoutError) as exc:
                log.warning("redis: rooms not refreshed (%s)", exc)

    # -- helpers ------------------------------------------------------------------------

    async def _get(self, key: str) -> bytes | None:
        if self._client is None:
            return None
        try:
            async with asyncio.timeout(LOOKUP_TIMEOUT):
                value = await self._client.get(key)
        except (RedisError, OSError, TimeoutError) as exc:
            log.warning("redis: %s not read (%s)", key, exc)
            return None
        return value if isinstance(value, bytes) or value is None else str(value).encode()
