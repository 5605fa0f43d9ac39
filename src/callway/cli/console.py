"""``callway console``: attach to a running node, like ``asterisk -rvvv``.

``-x "pjsip show contacts"`` runs one command and exits (``asterisk -rx``);
without it the console shows the live log and reads commands from stdin
until EOF or ``exit``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from pathlib import Path


async def _print_lines(reader: asyncio.StreamReader, done: asyncio.Event) -> None:
    while line := await reader.readline():
        message = json.loads(line)
        text = message.get("log") or message.get("text", "")
        print(text, flush=True)
        if "log" not in message:
            done.set()
    done.set()


async def one_shot(path: Path, command: str, timeout: float = 10.0) -> int:
    """Run one command; print its output; exit status 0 if it succeeded."""
    reader, writer = await asyncio.open_unix_connection(str(path), limit=1 << 20)
    try:
        writer.write(json.dumps({"cmd": command}).encode() + b"\n")
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), timeout)
        message = json.loads(line) if line else {"ok": False, "text": "no answer"}
        print(message.get("text", ""), flush=True)
        return 0 if message.get("ok") else 1
    finally:
        writer.close()


async def interactive(path: Path) -> int:
    """Live log plus commands from stdin."""
    reader, writer = await asyncio.open_unix_connection(str(path), limit=1 << 20)
    done = asyncio.Event()
    printer = asyncio.ensure_future(_print_lines(reader, done))
    loop = asyncio.get_running_loop()
    try:
        writer.write(b'{"cmd": "log on"}\n')
        await writer.drain()
        print(f"Connected to callway ({path}). Type 'help' for commands, Ctrl-D to leave.")
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line or line.strip() in ("exit", "quit"):
                return 0
            if not line.strip():
                continue
            command = "no-such-command" if line.strip() == "help" else line.strip()
            writer.write(json.dumps({"cmd": command}).encode() + b"\n")
            await writer.drain()
    finally:
        printer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await printer
        writer.close()


def run(path: Path, command: str | None) -> int:
    """Entry point used by ``callway console``."""
    if not path.exists():
        print(f"callway console: no control socket at {path} (is the node running?)",
              file=sys.stderr)  # fmt: skip
        return 2
    try:
        if command:
            return asyncio.run(one_shot(path, command))
        return asyncio.run(interactive(path))
    except (ConnectionError, OSError) as exc:
        print(f"callway console: cannot connect to {path}: {exc}", file=sys.stderr)
        return 2
