"""Logging setup: plain text or JSON lines, with the Call-ID on every line of a call.

Whoever handles a call sets :data:`current_call_id` (a context variable, so
each asyncio task has its own value) for the duration of the work, most
simply with ``with call_context(call_id): ...``; :class:`CallIdFilter`, put
on the handler by :func:`setup_logging`, copies it onto every record as
``record.call_id``.  A record that already carries ``call_id`` (from
``log.info(..., extra={"call_id": ...})``) keeps it.

JSON lines look like::

    {"ts": "2024-05-01T10:00:00.123Z", "level": "INFO", "logger": "callway.pbx",
     "msg": "call answered", "call_id": "a84b4c76e66710"}
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime
import json
import logging
import sys
from collections.abc import Iterator
from typing import IO

__all__ = [
    "CallIdFilter",
    "JsonFormatter",
    "PlainFormatter",
    "call_context",
    "current_call_id",
    "setup_logging",
]

current_call_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "callway_call_id", default=None
)
"""The Call-ID of the call being handled in this context (None outside a call)."""

PLAIN_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


@contextlib.contextmanager
def call_context(call_id: str | None) -> Iterator[None]:
    """Set :data:`current_call_id` for the block (restored afterwards)."""
    token = current_call_id.set(call_id)
    try:
        yield
    finally:
        current_call_id.reset(token)


#: Asterisk's verbose output (``Executing [8006@from-external:1] NoOp(...)``): off
#: in the node's own log unless ``-v``, on in a console's live log while one listens
#: (``callway console``, like ``asterisk -rvvv``), and free while off.
VERBOSE_LOGGER = "callway.verbose"


class QuietVerbose(logging.Filter):
    """Keeps the verbose lines a console turned on out of the node's own log."""

    def filter(self, record: logging.LogRecord) -> bool:
        """False for a record of :data:`VERBOSE_LOGGER`."""
        return record.name != VERBOSE_LOGGER


class CallIdFilter(logging.Filter):
    """Adds ``record.call_id`` (the current Call-ID, or None); never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Stamp the record."""
        if getattr(record, "call_id", None) is None:
            record.call_id = current_call_id.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts (UTC, ISO 8601), level, logger, msg, call_id, exc."""

    def format(self, record: logging.LogRecord) -> str:
        """The JSON line for ``record``."""
        stamp = datetime.datetime.fromtimestamp(record.created, datetime.UTC)
        line: dict[str, object] = {
            "ts": stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        call_id = getattr(record, "call_id", None)
        if call_id:
            line["call_id"] = call_id
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, ensure_ascii=False, default=str)


class PlainFormatter(logging.Formatter):
    """The usual text line, with ``[call_id]`` appended when the record has one."""

    def __init__(self) -> None:
        super().__init__(PLAIN_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        """The text line for ``record``."""
        text = super().format(record)
        call_id = getattr(record, "call_id", None)
        if not call_id:
            return text
        first, newline, rest = text.partition("\n")
        return f"{first} [{call_id}]{newline}{rest}"


def setup_logging(
    json: bool = False,
    level: int | str = logging.INFO,
    *,
    stream: IO[str] | None = None,
) -> logging.Handler:
    """Configure the root logger: one stream handler, plain or JSON lines.

    ``json`` selects JSON lines.  Replaces the root logger's handlers (so
    calling it twice does not double the output) and returns the new handler.
    ``level`` is a number or a name (``"DEBUG"``).  Below DEBUG the verbose
    lines (:data:`VERBOSE_LOGGER`) stay off; a console turns them on for itself.
    """
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.addFilter(CallIdFilter())
    handler.setFormatter(JsonFormatter() if json else PlainFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    verbose = logging.getLogger(VERBOSE_LOGGER)
    if root.getEffectiveLevel() > logging.DEBUG:
        handler.addFilter(QuietVerbose())
        verbose.setLevel(logging.WARNING)  # off until a console asks for it
    else:
        verbose.setLevel(logging.NOTSET)
    return handler
