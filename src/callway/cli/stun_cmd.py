"""``callway stun --listen IP:PORT [--alternate IP:PORT]``: a STUN server.

With ``--alternate`` on a second IP (and port) it is an RFC 5780 NAT
behaviour discovery server answering CHANGE-REQUEST; otherwise a plain
RFC 8489 Binding server.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from typing import Any

DEFAULT_PORT = 3478  # RFC 8489 §18.6


def parse_hostport(text: str) -> tuple[str, int]:
    """``IP:PORT``, ``[IPv6]:PORT``, or a bare IP (port 3478)."""
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise argparse.ArgumentTypeError(f"bad address {text!r}")
        port_text = rest[1:]
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    else:
        host, port_text = text, ""
    try:
        port = int(port_text) if port_text else DEFAULT_PORT
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"bad port in {text!r}") from exc
    if not host or not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"bad address {text!r}")
    return host, port


def add_stun_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the ``stun`` subcommand on ``build_parser()``'s subparsers."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "stun", help="run a STUN server (RFC 8489; RFC 5780 with --alternate)"
    )
    parser.add_argument(
        "--listen",
        type=parse_hostport,
        default=("0.0.0.0", DEFAULT_PORT),
        help="primary IP:PORT (default 0.0.0.0:3478)",
    )
    parser.add_argument(
        "--alternate",
        type=parse_hostport,
        help="second IP:PORT for RFC 5780 (OTHER-ADDRESS, CHANGE-REQUEST)",
    )
    parser.set_defaults(func=run_stun)
    return parser


def run_stun(args: argparse.Namespace) -> int:
    """Run the server until SIGINT or SIGTERM: 0 on a clean stop, 1 if it cannot bind,
    2 for unusable arguments."""
    if args.alternate is not None and args.listen[0] in ("0.0.0.0", "::"):
        print(
            "callway stun: --alternate needs --listen on a specific IP (RFC 5780 answers"
            " must leave from known addresses)",
            file=sys.stderr,
        )
        return 2
    try:
        asyncio.run(_serve(args.listen, args.alternate))
    except OSError as exc:
        print(f"callway stun: {exc}", file=sys.stderr)
        return 1
    return 0


async def _serve(listen: tuple[str, int], alternate: tuple[str, int] | None) -> None:
    from callway.transport.stun import StunServer

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    async with StunServer(listen, alternate) as server:
        where = ", ".join(f"{h}:{p}" for h, p in server.addresses)
        print(f"callway stun: listening on udp {where}", file=sys.stderr, flush=True)
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    """``python -m callway.cli.stun_cmd ...``: the subcommand on its own."""
    parser = argparse.ArgumentParser(prog="callway")
    add_stun_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["stun", *(sys.argv[1:] if argv is None else argv)])
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
