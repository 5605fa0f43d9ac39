"""The call service: new INVITEs become channels; shared state for them.

It owns what every channel needs (config, dialplan, location, the RTP port
pool, the call manager) and keeps the list of live channels for the
console and the admin API.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from callway.app.b2bua.callback import CallbackService
from callway.app.b2bua.channel import Channel
from callway.app.b2bua.events import EventBus, publish
from callway.app.b2bua.legs import InboundLeg
from callway.app.b2bua.manager import CallManager
from callway.app.b2bua.media import CallMedia
from callway.app.b2bua.player import PromptError, RtpPlayer, find_prompt, load_pcm
from callway.core.address import Address
from callway.core.logbudget import LogBudget
from callway.media.conference import RoomRegistry
from callway.media.ports import PortPool, PortsExhaustedError
from callway.media.relay import RelaySession
from callway.pbx.auth import Authenticator
from callway.pbx.dialplan.actions import MusicOnHold, Playback
from callway.pbx.dialplan_model import Dialplan
from callway.pbx.location import Location
from callway.pbx.model import PjsipConfig
from callway.sip.message import Request, make_response
from callway.sip.transaction import ServerTransactionKey
from callway.sip.uri import SipURI
from callway.store.cdr import CdrRow, SqliteCdrStore
from callway.store.redis_state import RedisState

log = logging.getLogger("callway.calls")

#: Calls a second whose "new call" and "ended" lines are logged; the others are
#: counted and summed up by :meth:`CallService.log_suppressed` (the CDRs keep every call).
CALL_LINES_PER_SECOND = 20


@dataclass(slots=True)
class CallRecord:
    """One CDR (what Asterisk's cdr module writes)."""

    uniqueid: str
    src: str
    dst: str
    start: float
    answer: float | None
    end: float
    disposition: str
    duration: int
    billsec: int
    clid: str = ""  # "name" <num>
    channel: str = ""  # PJSIP/8005-00000001
    dstchannel: str = ""  # the answering callee's channel
    lastapp: str = ""  # the last dialplan application run, and its arguments
    lastdata: str = ""
    dcontext: str = ""  # the context the call started in
    accountcode: str = ""  # the caller endpoint's accountcode


def clid(name: str, number: str) -> str:
    """Asterisk's CDR ``clid`` (``ast_callerid_merge``): ``"name" <number>``, else either."""
    if name and number:
        quoted = name.replace("\\", "\\\\").replace('"', '\\"')  # ast_escape_quoted
        return f'"{quoted}" <{number}>'
    return name or number


def cdr_writer(store: SqliteCdrStore) -> Callable[[CallRecord], None]:
    """An ``on_record`` callback that queues each CDR in the SQLite ``cdr`` table."""

    def write(record: CallRecord) -> None:
        store.add(
            CdrRow(
                uniqueid=record.uniqueid,
                caller=record.src,
                callee=record.dst,
                start=record.start,
                answer=record.answer,
                end=record.end,
                disposition=record.disposition,
                duration=record.duration,
                billsec=record.billsec,
                clid=record.clid,
                channel=record.channel,
                dstchannel=record.dstchannel,
                lastapp=record.lastapp,
                lastdata=record.lastdata,
                dcontext=record.dcontext,
                accountcode=record.accountcode,
            )
        )

    return write


class CallService:
    """Creates and tracks channels."""

    def __init__(
        self,
        *,
        config: PjsipConfig,
        dialplan: Dialplan,
        location: Location,
        auth: Authenticator,
        manager: CallManager,
        pool: PortPool,
    ) -> None:
        self.config = config
        self.dialplan = dialplan
        self.location = location
        self.auth = auth
        self.manager = manager
        self.pool = pool
        self.channels: dict[str, Channel] = {}
        #: Concurrent channels beyond which new INVITEs get 503 (0: no cap).
        self.max_calls = 0
        self.rooms = RoomRegistry(pool)
        self.callback: CallbackService | None = None
        self.cluster: RedisState | None = None  # shared call state ([store] url = redis://)
        self.events = EventBus()  # call events for the admin API's /api/v1/events
        self.on_record: list[Callable[[CallRecord], None]] = []
        #: Whether Dial may ring a contact (aor, uri): False once qualify says Unavail.
        self.reachable: Callable[[str, str], bool] = lambda _aor, _uri: True
        self._ids = itertools.count(1)
        self._tasks: set[asyncio.Task[None]] = set()
        #: "new call"/"ended" lines: both for the first calls of each second, none for
        #: the rest (at 200 calls a second they cost more CPU than the SDP work).
        self.call_log = LogBudget(CALL_LINES_PER_SECOND)

    def next_uid(self) -> str:
        """A new channel's unique id (a callee's channel takes one as well)."""
        return f"{next(self._ids):08x}"

    def log_suppressed(self) -> None:
        """Log how many calls the budget kept out of the log since the last call."""
        count = self.call_log.take_suppressed()
        if count:
            log.info("%d more calls started (not logged one by one: at most %d a second)",
                     count, self.call_log.per_second)  # fmt: skip

    def stats(self) -> dict[str, int]:
        """Live counts for leak checks: what must drop to zero once calls end."""
        return {
            "channels": len(self.channels),
            "dialogs": len(self.manager.dialogs),
            "invites": len(self.manager.invites),
            "client_requests": self.manager.pending_requests,
            "rtp_pairs": self.pool.in_use,
            "tasks": len(self._tasks),
        }

    def handle_invite(self, key: ServerTransactionKey, request: Request, source: Address) -> None:
        """An INVITE outside any dialog: authenticate, then start a channel."""
        if self.max_calls and len(self.channels) >= self.max_calls:
            response = make_response(request, 503, "Too Many Calls")
            response.add("Retry-After", "5")
            self.manager.port.send_response(key, response)
            log.warning("call limit %d reached: 503 to %s", self.max_calls, source)
            return
        outcome = self.auth.check(request, source, time.time())
        if outcome.response is not None:
            self.manager.port.send_response(key, outcome.response)
            return
        endpoint = outcome.endpoint
        uri = request.uri
        if endpoint is None or not isinstance(uri, SipURI):
            self.manager.port.send_response(key, make_response(request, 403))
            return
        leg = InboundLeg(self.manager, key, request, source)
        uid = self.next_uid()
        channel = Channel(self, leg, endpoint, uri.user or "s", uid)
        self.channels[uid] = channel
        publish(channel, "call_started")
        channel.logged = self.call_log.allow(channel.started)
        if channel.logged:
            log.info("new call %s from %s to %s", channel.name, endpoint.name, uri.user,
                     extra={"call_id": request.call_id})  # fmt: skip
        if self.cluster is not None:
            self.cluster.record_dialog(request.call_id)
        task = asyncio.get_running_loop().create_task(channel.run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def new_media(self, channel: Channel) -> CallMedia:
        """A relay for a channel; raises PortsExhaustedError when no ports are left."""
        endpoint = channel.endpoint

        def on_timeout(session: RelaySession, leg_name: str) -> None:
            if not channel.leg.answered or (leg_name == "b" and channel.leg.listener is None):
                return  # rtp_timeout counts from the answer; leg b only once bridged
            log.warning("%s: no RTP on leg %s for %ss%s: hanging up", channel.name, leg_name,
                        f"{session.rtp_timeout:g}",
                        " (on hold: rtp_timeout_hold)" if channel.media and channel.media.held
                        else "")  # fmt: skip
            listener = channel.leg.listener
            if listener is not None and hasattr(listener, "hang_up"):
                listener.hang_up()
            elif not channel.leg.ended.is_set():
                task = asyncio.ensure_future(channel.leg.bye())
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

        try:
            return CallMedia(
                self.pool,
                a_codecs=endpoint.allow,
                a_host=channel.leg.media_host,
                a_encryption=endpoint.media_encryption,
                a_tos=endpoint.tos_audio,
                rtp_timeout=float(endpoint.rtp_timeout),
                rtp_timeout_hold=float(endpoint.rtp_timeout_hold),
                on_timeout=on_timeout,
            )
        except PortsExhaustedError:
            log.error("no RTP ports left for %s", channel.name)
            raise

    async def play(self, channel: Channel, action: Playback | MusicOnHold) -> dict[str, str]:
        """Play prompts (answering first unless ``noanswer``) or music until hangup."""
        if not channel.answer():
            return {"PLAYBACKSTATUS": "FAILED"}
        media = channel.media
        assert media is not None
        leg = media.relay.leg("a")
        player = RtpPlayer(leg.send_rtp, lambda: leg.remote_rtp, media.codec("a") or "ulaw")
        stop = channel.leg.ended
        if isinstance(action, MusicOnHold):
            return await self._music(player, action, stop)
        try:
            for name in action.files:
                if not await player.play(load_pcm(find_prompt(name)), stop):
                    break
        except PromptError as exc:
            log.warning("%s: %s", channel.name, exc)
            return {"PLAYBACKSTATUS": "FAILED"}
        return {"PLAYBACKSTATUS": "SUCCESS"}

    async def _music(self, player: RtpPlayer, action: MusicOnHold, stop: asyncio.Event
                     ) -> dict[str, str]:  # fmt: skip
        try:
            pcm = load_pcm(find_prompt(f"moh-{action.klass or 'default'}"))
        except PromptError:
            pcm = load_pcm(find_prompt("moh-default"))
        deadline = None if action.duration is None else time.monotonic() + action.duration
        while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
            remaining = len(pcm) if deadline is None else int((deadline - time.monotonic()) * 16000)
            await player.play(pcm[: max(0, remaining) & ~1], stop)
        return {}

    def channel_ended(self, channel: Channel) -> None:
        """Write the CDR and forget the channel."""
        self.channels.pop(channel.uid, None)
        if self.cluster is not None:
            self.cluster.forget_dialog(channel.leg.invite.call_id)
        end = time.time()
        scope = channel.caller_id  # Asterisk's CDR src is CALLERID(num)
        src = scope.callerid_num if scope is not None else channel.endpoint.name
        runner = channel.runner
        record = CallRecord(
            uniqueid=channel.uid,
            src=src,
            dst=channel.exten,
            start=channel.started,
            answer=channel.answered_at,
            end=end,
            disposition=channel.disposition,
            duration=int(end - channel.started),
            billsec=int(end - channel.answered_at) if channel.answered_at else 0,
            clid=clid(scope.callerid_name if scope is not None else "", src),
            channel=channel.name,
            dstchannel=channel.dstchannel,
            lastapp=runner.last_app if runner is not None else "",
            lastdata=runner.last_data if runner is not None else "",
            dcontext=channel.endpoint.context,
            accountcode=channel.endpoint.accountcode,
        )
        for callback in self.on_record:
            try:
                callback(record)
            except Exception:
                log.exception("CDR writer failed for %s", channel.name)
        if channel.logged:
            log.info("call %s ended: %s", channel.name, record.disposition)
        publish(channel, "call_ended", disposition=record.disposition, billsec=record.billsec)
