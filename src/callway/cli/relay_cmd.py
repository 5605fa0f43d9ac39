"""``callway relay``: a media relay Kamailio drives with its ``rtpengine`` module.

``callway relay --listen udp:127.0.0.1:2223 --media-ip 127.0.0.1 --ports 30000-40000``
answers rtpengine's ng protocol on the listen address (Kamailio:
``modparam("rtpengine", "rtpengine_sock", "udp:127.0.0.1:2223")``) and
relays each call's media through ports of the range.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

DEFAULT_LISTEN = "udp:127.0.0.1:2223"


def _listen(text: str) -> tuple[str, int]:
    from callway.app.relay_service import parse_listen

    try:
        return parse_listen(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _ports(text: str) -> tuple[int, int]:
    from callway.app.relay_service import parse_ports

    try:
        return parse_ports(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_relay_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the ``relay`` subcommand on ``build_parser()``'s subparsers."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "relay", help="run a media relay speaking rtpengine's ng protocol (for Kamailio)"
    )
    parser.add_argument(
        "--listen",
        type=_listen,
        default=_listen(DEFAULT_LISTEN),
        help=f"ng control socket udp:IP:PORT (default {DEFAULT_LISTEN})",
    )
    parser.add_argument(
        "--media-ip",
        default="127.0.0.1",
        help="address the media ports bind to (default 127.0.0.1)",
    )
    parser.add_argument("--advertise", help="address written into SDP (default: --media-ip)")
    parser.add_argument(
        "--ports",
        type=_ports,
        default=(30000, 40000),
        help="media port range MIN-MAX (default 30000-40000)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        help="delete calls without media for this many seconds (default 60)",
    )
    parser.set_defaults(func=run_relay)  # fmt: skip
    return parser


def run_relay(args: argparse.Namespace) -> int:
    """Serve until SIGINT or SIGTERM: 0 on a clean stop, 1 if a socket cannot be bound."""
    from callway.app.relay_service import RelaySettings, serve

    try:
        settings = RelaySettings(
            listen_host=args.listen[0], listen_port=args.listen[1], media_ip=args.media_ip,
            advertise=args.advertise, port_min=args.ports[0], port_max=args.ports[1],
            timeout=args.timeout,
        )  # fmt: skip
        try:
            import uvloop

            uvloop.install()  # the relay's hot path is the event loop's readers
        except ImportError:  # plain asyncio works too
            pass
        asyncio.run(serve(settings))
    except (OSError, ValueError) as exc:
        print(f"callway relay: {exc}", file=sys.stderr)
        return 1
    return 0
