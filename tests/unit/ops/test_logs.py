"""Structured logs: JSON lines and the Call-ID on every line of a call."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator

import pytest

from callway.ops.logs import call_context, current_call_id, setup_logging


@pytest.fixture
def root_state() -> Iterator[None]:
    """Restore the root logger's handlers and level after the test."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_lines_carry_the_call_id_when_known(root_state: None) -> None:
    stream = io.StringIO()
    setup_logging(True, "DEBUG", stream=stream)
    log = logging.getLogger("callway.test")
    log.info("outside %s", "calls")
    with call_context("a84b4c76e66710@pc33"):
        log.debug("inside")
        logging.getLogger("callway.other").warning("also inside")
    log.error("explicit", extra={"call_id": "given"})
    out = lines(stream)
    assert [(o["level"], o["logger"], o["msg"], o.get("call_id")) for o in out] == [
        ("INFO", "callway.test", "outside calls", None),
        ("DEBUG", "callway.test", "inside", "a84b4c76e66710@pc33"),
        ("WARNING", "callway.other", "also inside", "a84b4c76e66710@pc33"),
        ("ERROR", "callway.test", "explicit", "given"),
    ]
    assert all(str(o["ts"]).endswith("Z") and "T" in str(o["ts"]) for o in out)
    assert current_call_id.get() is None


def test_exceptions_are_kept_in_one_json_line(root_state: None) -> None:
    stream = io.StringIO()
    setup_logging(json=True, stream=stream)
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logging.getLogger("callway.test").exception("failed")
    (line,) = lines(stream)
    assert line["msg"] == "failed"
    assert "RuntimeError: boom" in str(line["exc"])


def test_plain_text_appends_the_call_id(root_state: None) -> None:
    stream = io.StringIO()
    setup_logging(False, logging.INFO, stream=stream)
    log = logging.getLogger("callway.test")
    log.debug("hidden")  # below the level
    with call_context("c-1"):
        log.info("ringing")
    log.info("idle")
    text = stream.getvalue().splitlines()
    assert len(text) == 2
    assert text[0].endswith("INFO callway.test: ringing [c-1]")
    assert text[1].endswith("INFO callway.test: idle")


def test_setting_up_twice_does_not_double_lines(root_state: None) -> None:
    stream = io.StringIO()
    setup_logging(True, stream=io.StringIO())
    setup_logging(True, stream=stream)
    logging.getLogger("callway.test").warning("once")
    assert len(lines(stream)) == 1


def test_each_task_has_its_own_call_id(root_state: None) -> None:
    stream = io.StringIO()
    setup_logging(True, stream=stream)
    log = logging.getLogger("callway.test")

    async def call(call_id: str) -> None:
        current_call_id.set(call_id)
        await asyncio.sleep(0)
        log.info("step 1")
        await asyncio.sleep(0)
        log.info("step 2")

    async def main() -> None:
        await asyncio.gather(call("A"), call("B"))
        log.info("after")

    asyncio.run(main())
    got = [(o["msg"], o.get("call_id")) for o in lines(stream)]
    assert sorted(got[:4]) == [("step 1", "A"), ("step 1", "B"), ("step 2", "A"), ("step 2", "B")]
    assert got[4] == ("after", None)
