"""``callway`` command line: subcommands only parse arguments and call app/."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from pathlib import Path

from callway.cli.relay_cmd import add_relay_parser
from callway.cli.stun_cmd import add_stun_parser
from callway.config.errors import ConfigError


def _setup_logging(verbose: int, json_lines: bool = False) -> None:
    from callway.ops.logs import setup_logging

    setup_logging(json_lines, logging.DEBUG if verbose > 1 else logging.INFO)


def _run(coro_factory: object) -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # plain asyncio works too
        pass
    from callway.app.runtime import tune_gc

    tune_gc()  # the configuration is loaded: freeze it out of the collector's way
    asyncio.run(coro_factory())  # type: ignore[operator]


def _cmd_pbx(args: argparse.Namespace) -> int:
    from callway.app.pbx import PbxApp, PbxSettings

    config_dir = Path(args.config).resolve()
    state_dir = Path(args.state_dir).resolve() if args.state_dir else config_dir
    try:
        app = PbxApp(PbxSettings(config_dir, state_dir))
    except ConfigError as exc:
        print(f"callway pbx: configuration error: {exc}", file=sys.stderr)
        return 78  # EX_CONFIG
    _run(app.run)
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from callway.app.demo import Demo, DemoSettings

    state_dir = Path(args.state_dir or os.path.join(os.getcwd(), "var", "demo")).resolve()
    settings = DemoSettings(
        state_dir,
        pbx_port=args.port or 5061,
        balancer_port=args.balancer_port,
        stun_port=args.stun_port,
    )
    try:
        demo = Demo(settings)
    except ConfigError as exc:
        print(f"callway demo: configuration error: {exc}", file=sys.stderr)
        return 78
    _run(demo.run)
    return 0


def _cmd_probe(args: argparse.Namespace) -> int:
    from callway.app.probe import exit_code, probe, report

    result = probe(
        args.uri,
        timeout=args.timeout,
        transport=args.transport,
        cafile=args.cafile,
        verify=args.verify,
    )
    if not args.quiet:
        print(report(result, args.nagios), flush=True)
    return exit_code(result, args.nagios)


def _cmd_balancer(args: argparse.Namespace) -> int:
    from callway.app.balancer import BalancerApp, balancer_settings

    try:
        settings = balancer_settings(args)
        app = BalancerApp(settings)
    except (ConfigError, ValueError, OSError) as exc:
        print(f"callway balancer: configuration error: {exc}", file=sys.stderr)
        return 78
    app.fork_workers()  # --workers N: N processes on the port (a no-op for one)
    _run(app.run)
    return 0


def _cmd_keepalived(args: argparse.Namespace) -> int:
    from callway.app.keepalived import nodes, render
    from callway.config.toml import load_settings

    path = Path(args.config).resolve() / "callway.toml" if args.config else None
    try:
        settings = load_settings(path if path is not None and path.is_file() else None)
    except ConfigError as exc:
        print(f"callway keepalived: configuration error: {exc}", file=sys.stderr)
        return 78
    master, backup = nodes(settings.ha)
    chosen = {"master": (master,), "backup": (backup,), "both": (master, backup)}[args.role]
    print("\n".join(render(settings.ha, node) for node in chosen), end="")
    return 0


def _cmd_cert(args: argparse.Namespace) -> int:
    from callway.app.certs import self_signed, with_ca

    names = args.name or ["localhost", "127.0.0.1"]
    directory = Path(args.dir).resolve()
    issue = self_signed if args.self_signed else with_ca
    issued = issue(directory, names, days=args.days, stem=args.stem)
    print(f"certificate: {issued.cert}\nprivate key: {issued.key}")
    if issued.ca_cert is not None:
        print(f"CA certificate (give it to phones): {issued.ca_cert}")
    print(
        "pjsip.conf:\n[transport-tls]\ntype=transport\nprotocol=tls\nbind=0.0.0.0:5061\n"
        f"cert_file={issued.cert}\npriv_key_file={issued.key}\nmethod=tlsv1_2"
    )
    return 0


def _cmd_console(args: argparse.Namespace) -> int:
    from callway.cli.console import run

    if args.socket:
        path = Path(args.socket)
    elif args.config:
        path = Path(args.state_dir or args.config).resolve() / "callway.ctl"
    else:
        path = Path(args.state_dir or os.path.join(os.getcwd(), "var", "demo")) / "callway.ctl"
    return run(path, args.execute)


def _cmd_trace(args: argparse.Namespace) -> int:
    from callway.ops.ladder import describe_file

    print(describe_file(Path(args.file), args.call_id, list_calls=args.list), end="")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(prog="callway", description="callway VoIP system")
    parser.add_argument("-v", "--verbose", action="count", default=1)
    parser.add_argument("--log-json", action="store_true", help="JSON log lines (with Call-ID)")
    sub = parser.add_subparsers(dest="command", required=True)
    pbx = sub.add_parser("pbx", help="run a PBX from pjsip.conf / extensions.conf")
    pbx.add_argument("-c", "--config", required=True, help="directory with pjsip.conf")
    pbx.add_argument("--state-dir", help="where registrations are kept (default: the config dir)")
    pbx.set_defaults(func=_cmd_pbx)
    demo = sub.add_parser("demo", help="run the seed's demo on built-in defaults")
    demo.add_argument("--port", type=int, default=0, help="SIP port (default 5061, as the seed)")
    demo.add_argument("--state-dir", help="where registrations are kept (default ./var/demo)")
    demo.add_argument("--balancer-port", type=int, default=5060, help="0 = no balancer")
    demo.add_argument("--stun-port", type=int, default=3478, help="0 = no STUN server")
    demo.set_defaults(func=_cmd_demo)
    bal = sub.add_parser("balancer", help="run a SIP load balancer from dispatcher.list")
    bal.add_argument("-c", "--config", help="directory with dispatcher.list and callway.toml")
    bal.add_argument("--listen", action="append", help="udp:IP:PORT or tcp:IP:PORT (repeatable)")
    bal.add_argument("--list", help="dispatcher.list file")
    bal.add_argument("--set", type=int, help="destination set id (default 1)")
    bal.add_argument("--algorithm", type=int, help="Kamailio algorithm number (default 9)")
    bal.add_argument("--ping-interval", type=float, help="OPTIONS probing interval, seconds")
    bal.add_argument("--advertise", help="address put in Via/Record-Route/Path (e.g. the VIP)")
    bal.add_argument("--workers", type=int, help="processes sharing the UDP port (default 1)")
    bal.add_argument("--media-relay", help="udp:IP:PORT of an ng media relay (rtpengine)")
    bal.set_defaults(func=_cmd_balancer)
    console = sub.add_parser("console", help="attach to a running PBX (like asterisk -rvvv)")
    console.add_argument("-c", "--config", help="the node's config directory")
    console.add_argument("--state-dir", help="the node's state directory")
    console.add_argument("--socket", help="control socket path")
    console.add_argument("-x", "--execute", help="run one command and exit (asterisk -rx)")
    console.set_defaults(func=_cmd_console, verbose=0)
    cert = sub.add_parser("cert", help="write a self-signed TLS certificate (or a CA + cert)")
    cert.add_argument("--dir", default=".", help="where to write the files")
    cert.add_argument("--name", action="append", help="DNS name or IP (repeatable)")
    cert.add_argument("--self-signed", action="store_true", help="no CA: one self-signed cert")
    cert.add_argument("--days", type=int, default=825)
    cert.add_argument("--stem", default="callway", help="file name stem (default callway)")
    cert.set_defaults(func=_cmd_cert, verbose=0)
    keep = sub.add_parser("keepalived", help="print keepalived.conf for the balancer pair")
    keep.add_argument("-c", "--config", help="directory with callway.toml ([ha] section)")
    keep.add_argument("--role", choices=("master", "backup", "both"), default="both")
    keep.set_defaults(func=_cmd_keepalived, verbose=0)
    probe = sub.add_parser(
        "probe",
        help="send SIP OPTIONS; exit like sipsak (0 = 200, 1 = other reply, 2 = local error,"
        " 3 = timeout/refused)",
    )
    probe.add_argument("uri", help="e.g. sip:s@192.0.2.10:5060")
    probe.add_argument("-t", "--timeout", type=float, default=1.0, help="seconds (default 1)")
    probe.add_argument("--transport", choices=("udp", "tcp", "tls"), help="override the URI's")
    probe.add_argument("--cafile", help="CA bundle for TLS")
    probe.add_argument("--verify", action="store_true", help="verify the TLS certificate")
    probe.add_argument("-N", "--nagios", action="store_true", help="Nagios plugin exit codes")
    probe.add_argument("-q", "--quiet", action="store_true", help="print nothing")
    probe.set_defaults(func=_cmd_probe, verbose=0)
    add_stun_parser(sub)
    add_relay_parser(sub)
    trace = sub.add_parser("trace", help="draw the SIP ladder of a callway (or tcpdump) pcap")
    trace.add_argument("file")
    trace.add_argument("--call-id", help="only this call")
    trace.add_argument("--list", action="store_true", help="list the calls in the file")
    trace.set_defaults(func=_cmd_trace, verbose=0)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``callway`` command."""
    args = build_parser().parse_args(argv)
    if args.command not in ("probe", "keepalived", "cert", "console", "trace"):
        _setup_logging(args.verbose, args.log_json)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
