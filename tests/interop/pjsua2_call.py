"""Register with pjsua2, place one call, play a WAV into it and record it.

Run as a subprocess (one pjsua2 Endpoint per process, PEERS.md): no worker
threads, the null sound device, events pumped with ``libHandleEvents``.

Prints ``REGISTERED <code>``, then ``CALL <state>`` lines (``CONFIRMED`` once
the call is answered), hangs up after ``--seconds`` and prints
``DISCONNECTED <code>``; exits 0.  A failure prints ``FAILED <reason>`` and
exits 1.

``--tls`` sends SIP over TLS (1.2, the server certificate not verified: a
self-signed one), ``--srtp`` makes SRTP with SDES keys mandatory (RFC 4568);
the negotiated media transport is printed as ``MEDIA <proto>`` (``SRTP``
for RTP/SAVP).
"""

from __future__ import annotations

import argparse
import sys
import time

import pjsua2 as pj  # type: ignore[import-untyped]


class CallAccount(pj.Account):  # type: ignore[misc]
    def __init__(self) -> None:
        super().__init__()
        self.reg_codes: list[int] = []

    def onRegState(self, prm: pj.OnRegStateParam) -> None:  # noqa: N802 (pjsua2 API)
        self.reg_codes.append(int(prm.code))


class MediaCall(pj.Call):  # type: ignore[misc]
    def __init__(self, acc: CallAccount, play: str, record: str) -> None:
        super().__init__(acc)
        self.play_path = play
        self.record_path = record
        self.player: pj.AudioMediaPlayer | None = None
        self.recorder: pj.AudioMediaRecorder | None = None
        self.states: list[str] = []
        self.last_code = 0

    def onCallState(self, prm: pj.OnCallStateParam) -> None:  # noqa: N802
        info = self.getInfo()
        self.states.append(str(info.stateText))
        self.last_code = int(info.lastStatusCode)
        print(f"CALL {info.stateText} {info.lastStatusCode}", flush=True)

    def onCallMediaState(self, prm: pj.OnCallMediaStateParam) -> None:  # noqa: N802
        info = self.getInfo()
        for index, media in enumerate(info.media):
            if media.type != pj.PJMEDIA_TYPE_AUDIO or media.status != pj.PJSUA_CALL_MEDIA_ACTIVE:
                continue
            proto = self.getStreamInfo(index).proto
            secure = proto in (pj.PJMEDIA_TP_PROTO_RTP_SAVP, pj.PJMEDIA_TP_PROTO_RTP_SAVPF)
            print(f"MEDIA {'SRTP' if secure else 'RTP'} {proto}", flush=True)
            audio = self.getAudioMedia(index)
            if self.player is None:
                self.player = pj.AudioMediaPlayer()
                self.player.createPlayer(self.play_path, pj.PJMEDIA_FILE_NO_LOOP)
                self.player.startTransmit(audio)
            if self.recorder is None:
                self.recorder = pj.AudioMediaRecorder()
                self.recorder.createRecorder(self.record_path)
                audio.startTransmit(self.recorder)


def pump(ep: pj.Endpoint, seconds: float, done: object = None) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        ep.libHandleEvents(20)
        if done is not None and done():  # type: ignore[operator]
            return True
    return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--registrar", required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--dial", required=True)
    parser.add_argument("--play", required=True)
    parser.add_argument("--record", required=True)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--local-port", type=int, default=0)
    parser.add_argument("--rtp-port", type=int, default=0)
    parser.add_argument("--rtp-range", type=int, default=0)
    parser.add_argument("--log-level", type=int, default=3)
    parser.add_argument("--tls", action="store_true", help="SIP over TLS")
    parser.add_argument("--srtp", action="store_true", help="SRTP (SDES) mandatory")
    args = parser.parse_args(argv)
    host = args.registrar.split(":", 1)[1].split(";", 1)[0]

    ep = pj.Endpoint()
    ep.libCreate()
    acc: CallAccount | None = None
    call: MediaCall | None = None
    try:
        cfg = pj.EpConfig()
        cfg.uaConfig.threadCnt = 0
        cfg.uaConfig.mainThreadOnly = True
        cfg.logConfig.level = args.log_level
        cfg.logConfig.consoleLevel = args.log_level
        cfg.medConfig.clockRate = 8000
        cfg.medConfig.sndClockRate = 8000
        cfg.medConfig.noVad = True
        cfg.medConfig.ecTailLen = 0
        # A fixed 20 ms prefetch: the adaptive default shrinks the delay mid-call by
        # discarding frames, which a recording compared sample by sample hears.
        cfg.medConfig.jbInit = cfg.medConfig.jbMinPre = cfg.medConfig.jbMaxPre = 20
        ep.libInit(cfg)
        ep.audDevManager().setNullDev()
        for codec in ep.codecEnum2():
            name = str(codec.codecId)
            ep.codecSetPriority(name, 255 if name.startswith("PCMU/") else 0)

        tcfg = pj.TransportConfig()
        tcfg.boundAddress = "127.0.0.1"
        tcfg.port = args.local_port
        if args.tls:
            tcfg.tlsConfig.method = pj.PJSIP_TLSV1_2_METHOD
            tcfg.tlsConfig.verifyServer = False
            ep.transportCreate(pj.PJSIP_TRANSPORT_TLS, tcfg)
        else:
            ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, tcfg)
        ep.libStart()

        acfg = pj.AccountConfig()
        acfg.idUri = f"sip:{args.user}@{host}"
        acfg.regConfig.registrarUri = args.registrar
        acfg.regConfig.retryIntervalSec = 0
        acfg.natConfig.contactRewriteUse = 0
        acfg.natConfig.viaRewriteUse = 0
        acfg.natConfig.sdpNatRewriteUse = 0
        acfg.natConfig.sipOutboundUse = 0
        acfg.mediaConfig.transportConfig.boundAddress = "127.0.0.1"
        acfg.mediaConfig.transportConfig.port = args.rtp_port
        acfg.mediaConfig.transportConfig.portRange = args.rtp_range
        if args.srtp:
            acfg.mediaConfig.srtpUse = pj.PJMEDIA_SRTP_MANDATORY
            acfg.mediaConfig.srtpSecureSignaling = 1 if args.tls else 0
        acfg.sipConfig.authCreds.append(pj.AuthCredInfo("digest", "*", args.user, 0, args.password))
        acc = CallAccount()
        acc.create(acfg)
        if not pump(ep, 10, lambda: bool(acc and acc.reg_codes)) or acc.reg_codes[0] // 100 != 2:
            print(f"FAILED register {acc.reg_codes}", flush=True)
            return 1
        print(f"REGISTERED {acc.reg_codes[0]}", flush=True)

        call = MediaCall(acc, args.play, args.record)
        call.makeCall(args.dial, pj.CallOpParam(True))
        if not pump(ep, 10, lambda: bool(call and call.states and call.states[-1] in
                                           ("CONFIRMED", "DISCONNCTD"))):  # fmt: skip
            print("FAILED no answer within 10 s", flush=True)
            return 1
        if call.states[-1] != "CONFIRMED":
            print(f"FAILED call ended {call.last_code}", flush=True)
            return 1
        pump(ep, args.seconds)
        call.hangup(pj.CallOpParam(True))
        pump(ep, 5, lambda: bool(call and call.states[-1] == "DISCONNCTD"))
        print(f"DISCONNECTED {call.last_code}", flush=True)
        return 0
    except pj.Error as exc:
        print(f"FAILED pjsua2 error: {exc.info()}", flush=True)
        return 2
    finally:
        if call is not None:
            call.recorder = None  # the WAV header is written when the recorder goes
            call.player = None
            del call
        if acc is not None:
            acc.shutdown()
            del acc
        ep.libDestroy()


if __name__ == "__main__":
    sys.exit(main())
