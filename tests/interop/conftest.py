"""Fixtures for interop tests: a real ``callway pbx`` and real peers.

When a test fails, the PBX's stderr and each peer's log are attached to the
failure report (sections "callway pbx stderr", "baresip ... log").
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.pbx_process import PbxProcess, run_pbx
from tests.helpers.peers import Baresip, baresip_peer

_LOGS = pytest.StashKey[list[tuple[str, Callable[[], str]]]]()


def _attach(request: pytest.FixtureRequest, title: str, text: Callable[[], str]) -> None:
    request.node.stash.setdefault(_LOGS, []).append((title, text))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, Any, None]:
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed:
        for title, text in item.stash.get(_LOGS, []):
            try:
                body = text()
            except Exception as exc:  # a log reader must not hide the real failure
                body = f"<could not read: {exc!r}>"
            report.sections.append((title, body[-20000:]))


PbxFactory = Callable[..., PbxProcess]


@pytest.fixture
def pbx_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[PbxFactory]:
    """``pbx_factory(**run_pbx_kwargs)`` starts a PBX (each in its own directory)."""
    with ExitStack() as stack:
        count = 0

        def start(**kwargs: Any) -> PbxProcess:
            nonlocal count
            count += 1
            pbx = stack.enter_context(run_pbx(tmp_path / f"pbx{count}", **kwargs))
            _attach(request, f"callway pbx {count} stderr", pbx.stderr_text)
            return pbx

        yield start


@pytest.fixture
def pbx(pbx_factory: PbxFactory) -> PbxProcess:
    """The seed configuration on a free loopback port (UDP and TCP)."""
    return pbx_factory()


BaresipFactory = Callable[..., Baresip]


@pytest.fixture
def baresip_factory(
    request: pytest.FixtureRequest, tmp_path: Path, pbx_factory: PbxFactory
) -> Iterator[BaresipFactory]:
    """``baresip_factory(user=..., password=..., registrar_port=...)`` starts one.

    Depends on ``pbx_factory`` so that peers stop (and un-register) before the
    PBX does.
    """
    with ExitStack() as stack:
        count = 0

        def start(**kwargs: Any) -> Baresip:
            nonlocal count
            count += 1
            peer = stack.enter_context(baresip_peer(tmp_path / f"baresip{count}", **kwargs))
            _attach(request, f"baresip {peer.user} log", peer.log_text)
            return peer

        yield start
