"""Per-call SIP capture on demand, for the admin API and the console.

``start(app, ref)`` captures a live call's SIP messages, from now on, into
``per_call_dir/<Call-ID>.pcap`` through the PBX's :class:`SipTracer`; ``ref``
is the channel id the admin API lists (``/api/v1/calls``) or one of the
call's Call-IDs.  The capture follows the whole call: the caller's dialog
and every callee leg's (each has its own Call-ID at a B2BUA), including legs
dialled after the start.  It stops on :func:`stop` or by itself a little
after the call ends (so the final BYE exchange is in it).

When ``[trace]`` configures no tracer the PBX gets one here, on the first
capture, writing to ``STATE_DIR/captures`` (``[trace] per_call_dir``
otherwise); until then the SIP stack pays nothing for tracing.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from callway.ops.tracer import SipTracer

if TYPE_CHECKING:
    from callway.app.b2bua.channel import Channel
    from callway.app.pbx import PbxApp

__all__ = ["DEFAULT_DIR", "STOP_AFTER_END", "start", "stop"]

log = logging.getLogger("callway.ops.trace")

DEFAULT_DIR = "captures"  # under the state directory, without [trace] per_call_dir
STOP_AFTER_END = 5.0  # seconds a capture runs on after its call ended (BYE, ACK retransmits)


def _tracer(app: PbxApp) -> SipTracer:
    """The PBX's tracer, made (and hooked into the stack) if there was none."""
    tracer = app.tracer
    if tracer is None:
        tracer = SipTracer(local_for=app.stack.default_local)
        app.tracer = tracer
    if tracer.per_call_dir is None:
        tracer.per_call_dir = app.settings.state_dir / DEFAULT_DIR
    app.stack.trace = tracer
    return tracer


def find_channel(app: PbxApp, ref: str) -> Channel | None:
    """The live channel with id ``ref`` or one of whose Call-IDs is ``ref``."""
    channels = app.calls.channels
    channel = channels.get(ref)
    if channel is not None:
        return channel
    for candidate in list(channels.values()):
        if ref in candidate.call_ids:
            return candidate
    return None


def start(app: PbxApp, ref: str) -> tuple[str, Path]:
    """Capture call ``ref``; its (caller's) Call-ID and the pcap file's path.

    KeyError: no such live call.  ValueError: too many captures running.
    Starting a call already captured returns the same file.
    """
    channel = find_channel(app, ref)
    if channel is None:
        raise KeyError(ref)
    tracer = _tracer(app)
    main = channel.call_ids[0]
    path = tracer.start_call(main)
    for other in (channel.uid, *channel.call_ids[1:]):
        tracer.link(main, other)
    if channel.on_call_id is None:

        def follow(call_id: str) -> None:
            tracer.link(main, call_id)

        channel.on_call_id = follow
        channel.on_end.append(lambda: _stop_later(tracer, main, path))
    return main, path


def _stop_later(tracer: SipTracer, call_id: str, path: Path) -> None:
    def done() -> None:
        if tracer.calls.get(call_id) == path:
            tracer.stop_call(call_id)
            log.info("capture of call %s ended with the call: %s", call_id, path)

    try:
        asyncio.get_running_loop().call_later(STOP_AFTER_END, done)
    except RuntimeError:  # no loop: stop at once
        done()


def stop(app: PbxApp, ref: str) -> Path:
    """Stop capturing call ``ref`` (channel id or Call-ID); the file written.

    KeyError when no capture of that call is running.
    """
    tracer = app.tracer
    if tracer is not None:
        channel = find_channel(app, ref)
        names = [ref] if channel is None else [ref, channel.call_ids[0]]
        for name in names:
            path = tracer.stop_call(name)
            if path is not None:
                if channel is not None:
                    channel.on_call_id = None
                log.info("capture of call %s stopped: %s", name, path)
                return path
    raise KeyError(ref)
