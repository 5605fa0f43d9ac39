"""Register one account with pjsua2, then un-register; run as a subprocess.

One pjsua2 Endpoint per process (PEERS.md): no worker threads
(``threadCnt = 0``, ``mainThreadOnly``), the null sound device, and the event
loop pumped with ``libHandleEvents``.

Prints ``REGISTERED <code>`` once the registrar answers 2xx and
``UNREGISTERED <code>`` after the un-REGISTER; exits 0.  Any other final
answer, or a timeout, prints ``FAILED <reason>`` and exits 1 (2 for usage or
library errors).
"""

from __future__ import annotations

import argparse
import sys
import time

import pjsua2 as pj  # type: ignore[import-untyped]


class RegAccount(pj.Account):  # type: ignore[misc]
    def __init__(self) -> None:
        super().__init__()
        self.events: list[tuple[int, str, int]] = []

    def onRegState(self, prm: pj.OnRegStateParam) -> None:  # noqa: N802 (pjsua2 API)
        self.events.append((int(prm.code), str(prm.reason), int(prm.expiration)))


def pump_until(
    ep: pj.Endpoint, acc: RegAccount, count: int, deadline: float
) -> tuple[int, str, int] | None:
    while time.monotonic() < deadline:
        ep.libHandleEvents(20)
        if len(acc.events) >= count:
            return acc.events[count - 1]
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--registrar", required=True, help="e.g. sip:127.0.0.1:5061")
    parser.add_argument("--user", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--realm", default="*")
    parser.add_argument("--domain", default=None, help="AOR host (default: registrar's)")
    parser.add_argument("--transport", choices=("udp", "tcp"), default="udp")
    parser.add_argument("--local-port", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=10.0)
    parser.add_argument("--expires", type=int, default=300)
    parser.add_argument("--log-level", type=int, default=3)
    parser.add_argument("--no-unregister", action="store_true")
    args = parser.parse_args(argv)

    registrar: str = args.registrar
    if args.transport == "tcp" and ";transport=" not in registrar:
        registrar += ";transport=tcp"
    host = args.domain or registrar.split(":", 1)[1].split(";", 1)[0]

    ep = pj.Endpoint()
    ep.libCreate()
    acc: RegAccount | None = None
    code = 1
    try:
        cfg = pj.EpConfig()
        cfg.uaConfig.threadCnt = 0
        cfg.uaConfig.mainThreadOnly = True
        cfg.logConfig.level = args.log_level
        cfg.logConfig.consoleLevel = args.log_level
        ep.libInit(cfg)
        ep.audDevManager().setNullDev()

        tcfg = pj.TransportConfig()
        tcfg.boundAddress = "127.0.0.1"
        tcfg.port = args.local_port
        kind = pj.PJSIP_TRANSPORT_TCP if args.transport == "tcp" else pj.PJSIP_TRANSPORT_UDP
        ep.transportCreate(kind, tcfg)
        ep.libStart()

        acfg = pj.AccountConfig()
        acfg.idUri = f"sip:{args.user}@{host}"
        acfg.regConfig.registrarUri = registrar
        acfg.regConfig.timeoutSec = args.expires
        acfg.regConfig.retryIntervalSec = 0  # no automatic retry: report the failure
        acfg.natConfig.contactRewriteUse = 0
        acfg.natConfig.viaRewriteUse = 0
        acfg.natConfig.sipOutboundUse = 0
        acfg.mediaConfig.transportConfig.boundAddress = "127.0.0.1"
        acfg.sipConfig.authCreds.append(
            pj.AuthCredInfo("digest", args.realm, args.user, 0, args.password)
        )
        acc = RegAccount()
        acc.create(acfg)

        deadline = time.monotonic() + args.timeout
        first = pump_until(ep, acc, 1, deadline)
        if first is None:
            print(f"FAILED timeout: no REGISTER answer within {args.timeout} s", flush=True)
            return 1
        status, reason, expiration = first
        if not 200 <= status < 300:
            print(f"FAILED register {status} {reason}", flush=True)
            return 1
        print(f"REGISTERED {status} expires={expiration}", flush=True)
        if args.no_unregister:
            return 0

        acc.setRegistration(False)
        second = pump_until(ep, acc, 2, time.monotonic() + args.timeout)
        if second is None:
            print(f"FAILED timeout: no un-REGISTER answer within {args.timeout} s", flush=True)
            return 1
        status, reason, expiration = second
        if not 200 <= status < 300:
            print(f"FAILED unregister {status} {reason}", flush=True)
            return 1
        print(f"UNREGISTERED {status}", flush=True)
        code = 0
        return code
    except pj.Error as exc:
        print(f"FAILED pjsua2 error: {exc.info()}", flush=True)
        return 2
    finally:
        if acc is not None:
            acc.shutdown()
            del acc
        ep.libDestroy()


if __name__ == "__main__":
    sys.exit(main())
