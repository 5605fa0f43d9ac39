"""The control socket a running node serves to ``callway console``.

A Unix stream socket (``STATE_DIR/callway.ctl``, mode 0600: root only, as
Asterisk's ``asterisk.ctl``) speaking newline-delimited JSON:

* ``{"cmd": "pjsip show endpoints"}`` -> ``{"ok": true, "text": "..."}``
* ``{"cmd": "log on"}`` -> the node streams ``{"log": "..."}`` lines (like
  ``asterisk -rvvv``) until the client goes away.

Commands are the Asterisk CLI's where they exist: ``pjsip show endpoints``,
``pjsip show contacts``, ``pjsip show registrations``-style listings,
``core show channels``, ``core show version``, ``module reload``,
``dispatcher show``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

from callway.ops.logs import VERBOSE_LOGGER

log = logging.getLogger("callway.control")

Command = Callable[[list[str]], "str | Awaitable[str]"]
MAX_LINE = 65536


class CommandError(Exception):
    """A command refused its arguments: the console shows the text, the log stays quiet."""


class _Broadcast(logging.Handler):
    """Copies log records to every console that asked for the live log."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.listeners: set[asyncio.Queue[str]] = set()
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        if not self.listeners:
            return
        line = self.format(record)
        for queue in list(self.listeners):
            if queue.qsize() < 1000:  # a slow console loses lines, the node never blocks
                queue.put_nowait(line)


class ControlServer:
    """Serves commands on a Unix socket."""

    def __init__(self, path: Path, commands: dict[str, Command]) -> None:
        self.path = path
        self.commands = commands
        self._server: asyncio.AbstractServer | None = None
        self._broadcast = _Broadcast()
        self._verbose_raised = False  # a console turned the verbose lines on

    async def start(self) -> None:
        """Listen (replacing a stale socket file)."""
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        self._server = await asyncio.start_unix_server(self._client, path=str(self.path),
                                                       limit=MAX_LINE)  # fmt: skip
        os.chmod(self.path, 0o600)
        logging.getLogger("callway").addHandler(self._broadcast)

    async def close(self) -> None:
        """Stop listening."""
        logging.getLogger("callway").removeHandler(self._broadcast)
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        streaming: asyncio.Task[None] | None = None
        try:
            while line := await reader.readline():
                try:
                    request = json.loads(line)
                    words = str(request.get("cmd", "")).split()
                except (ValueError, AttributeError):
                    await _send(writer, {"ok": False, "text": "bad request"})
                    continue
                if words == ["log", "on"] and streaming is None:
                    streaming = asyncio.ensure_future(self._stream_log(writer))
                    await _send(writer, {"ok": True, "text": "live log on"})
                    continue
                await _send(writer, await self.run(words))
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            if streaming is not None:
                streaming.cancel()
            writer.close()

    async def _stream_log(self, writer: asyncio.StreamWriter) -> None:
        queue: asyncio.Queue[str] = asyncio.Queue()
        self._broadcast.listeners.add(queue)
        verbose = logging.getLogger(VERBOSE_LOGGER)
        if verbose.level > logging.INFO:  # the dialplan's Executing lines (asterisk -rvvv)
            verbose.setLevel(logging.INFO)
            self._verbose_raised = True
        try:
            while True:
                await _send(writer, {"log": await queue.get()})
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._broadcast.listeners.discard(queue)
            if self._verbose_raised and not self._broadcast.listeners:
                verbose.setLevel(logging.WARNING)
                self._verbose_raised = False

    async def run(self, words: list[str]) -> dict[str, object]:
        """Find the longest command matching ``words`` and run it."""
        for size in range(len(words), 0, -1):
            handler = self.commands.get(" ".join(words[:size]))
            if handler is not None:
                try:
                    result = handler(words[size:])
                    if not isinstance(result, str):
                        result = await result
                    return {"ok": True, "text": result}
                except CommandError as exc:
                    return {"ok": False, "text": str(exc)}
                except Exception as exc:
                    log.exception("console command %s failed", words)
                    return {"ok": False, "text": f"error: {exc}"}
        known = "\n".join(f"  {name}" for name in sorted(self.commands))
        return {"ok": False, "text": f"No such command '{' '.join(words)}'. Commands:\n{known}"}


async def _send(writer: asyncio.StreamWriter, payload: dict[str, object]) -> None:
    writer.write(json.dumps(payload).encode() + b"\n")
    await writer.drain()


def table(headers: list[str], rows: list[list[str]]) -> str:
    """A plain text table, Asterisk CLI style."""
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    out = [line, "=" * len(line)]
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    out.append(f"{len(rows)} objects found.")
    return "\n".join(out)
