"""SIP parse + serialize throughput: callway next to sippy and sipmessage.

Each library does what a proxy does with a request it forwards: parse the
datagram, read the Request-URI, the top Via, From (tag), To, CSeq and Call-ID,
add its own Via on top and serialize.  Two typical requests are measured: an
INVITE with an SDP offer and a REGISTER with digest Authorization.

Run: ``.venv/bin/python bench/bench_parse.py [--seconds 0.5] [--count 50000] [--rounds 5]``.
Peers that are not installed (``pip install -e .[bench]``) are skipped.
Loops are bounded both in count and in time; libraries take turns for ``--rounds``
slices and the best slice of each is kept.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from callway.sip.message import Request, parse_message

NEW_VIA = "SIP/2.0/UDP 192.0.2.254:5060;branch=z9hG4bK-proxy-1"
TOP_BRANCH = "z9hG4bK776asdhds"

_SDP = (
    b"v=0\r\n"
    b"o=alice 2890844526 2890844526 IN IP4 192.0.2.101\r\n"
    b"s=-\r\n"
    b"c=IN IP4 192.0.2.101\r\n"
    b"t=0 0\r\n"
    b"m=audio 49170 RTP/AVP 0 8 101\r\n"
    b"a=rtpmap:0 PCMU/8000\r\n"
    b"a=rtpmap:8 PCMA/8000\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\n"
    b"a=fmtp:101 0-15\r\n"
    b"a=ptime:20\r\n"
    b"a=sendrecv\r\n"
)

INVITE = (
    b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bK776asdhds;rport\r\n"
    b"Max-Forwards: 70\r\n"
    b'To: "Bob" <sip:bob@biloxi.example.com>\r\n'
    b'From: "Alice" <sip:alice@atlanta.example.com>;tag=1928301774\r\n'
    b"Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Contact: <sip:alice@pc33.atlanta.example.com:5060;transport=udp>\r\n"
    b"Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, REFER, NOTIFY\r\n"
    b"Supported: replaces, timer\r\n"
    b"User-Agent: softphone/1.0\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: " + str(len(_SDP)).encode() + b"\r\n"
    b"\r\n" + _SDP
)

REGISTER = (
    b"REGISTER sip:registrar.biloxi.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP bobspc.biloxi.example.com:5060;branch=z9hG4bK776asdhds;rport\r\n"
    b"Max-Forwards: 70\r\n"
    b"To: Bob <sip:bob@biloxi.example.com>\r\n"
    b"From: Bob <sip:bob@biloxi.example.com>;tag=456248\r\n"
    b"Call-ID: 843817637684230@998sdasdh09\r\n"
    b"CSeq: 1826 REGISTER\r\n"
    b"Contact: <sip:bob@192.0.2.4:5060;transport=udp>;expires=3600\r\n"
    b'Authorization: Digest username="bob", realm="biloxi.example.com", '
    b'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", uri="sip:registrar.biloxi.example.com", '
    b'response="245f23415f11432b3434341c022", algorithm=MD5, cnonce="0a4f113b", '
    b'qop=auth, nc=00000001, opaque="5ccc069c403ebaf9f0171e9517f40e41"\r\n'
    b"Expires: 3600\r\n"
    b"User-Agent: softphone/1.0\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)

MESSAGES = {"INVITE+SDP": INVITE, "REGISTER+Auth": REGISTER}


# -- workloads ------------------------------------------------------------------


def callway_proxy(data: bytes) -> bytes:
    """callway: lazy parse, touch what a proxy reads, prepend a Via, serialize."""
    message = parse_message(data)
    assert isinstance(message, Request)
    message.uri  # noqa: B018
    via = message.via
    message.from_.tag  # noqa: B018
    message.to  # noqa: B018
    message.cseq  # noqa: B018
    message.call_id  # noqa: B018
    assert via.branch == TOP_BRANCH
    message.prepend("Via", NEW_VIA)
    return message.to_bytes()


def _sippy_workload() -> Callable[[bytes], bytes] | None:
    try:
        from sippy.SipHeader import SipHeader  # type: ignore[import-untyped]
        from sippy.SipRequest import SipRequest  # type: ignore[import-untyped]
        from sippy.SipVia import SipVia  # type: ignore[import-untyped]
    except ImportError:
        return None

    def sippy_proxy(data: bytes) -> bytes:
        request = SipRequest(buf=data.decode("utf-8"))
        request.getRURI()
        via = request.getHFBody("via")
        request.getHFBody("from").getTag()
        request.getHFBody("to")
        request.getHFBody("cseq")
        request.getHFBody("call-id")
        assert via.getBranch() == TOP_BRANCH
        top = request.getHFs("via")[0]
        request.insertHeaderBefore(top, SipHeader(name="via", body=SipVia(NEW_VIA)))
        return str(request).encode("utf-8")

    return sippy_proxy


def _sipmessage_workload() -> Callable[[bytes], bytes] | None:
    try:
        from sipmessage import Message
    except ImportError:
        return None

    def sipmessage_proxy(data: bytes) -> bytes:
        message = Message.parse(data)
        vias = message.via
        message.from_address.parameters.get("tag")
        message.to_address  # noqa: B018
        message.cseq  # noqa: B018
        message.call_id  # noqa: B018
        assert vias[0].parameters.get("branch") == TOP_BRANCH
        message.headers.setlist("Via", [NEW_VIA, *message.headers.getlist("Via")])
        return bytes(message)

    return sipmessage_proxy


# -- timing ---------------------------------------------------------------------


def run_slice(work: Callable[[bytes], bytes], data: bytes, count: int, seconds: float) -> float:
    """Messages per second over one slice bounded by ``count`` messages and ``seconds``."""
    done = 0
    start = time.perf_counter()
    deadline = start + seconds
    while done < count:
        for _ in range(100):
            work(data)
        done += 100
        if time.perf_counter() >= deadline:
            break
    return done / (time.perf_counter() - start)


def measure(
    works: dict[str, Callable[[bytes], bytes]], data: bytes, count: int, seconds: float, rounds: int
) -> dict[str, float]:
    """Best rate of each library; the libraries take turns so load noise hits all alike."""
    best = dict.fromkeys(works, 0.0)
    for _ in range(rounds):
        for name, work in works.items():
            best[name] = max(best[name], run_slice(work, data, count, seconds))
    return best


def check(work: Callable[[bytes], bytes], data: bytes) -> None:
    """The output still holds the new Via above the old one and the same body."""
    out = work(data)
    assert out.index(b"z9hG4bK-proxy-1") < out.index(TOP_BRANCH.encode()), work
    assert out.endswith(data[data.index(b"\r\n\r\n") + 4 :]), work


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=0.5, help="time bound per slice")
    parser.add_argument("--count", type=int, default=50_000, help="message bound per slice")
    parser.add_argument("--rounds", type=int, default=5, help="slices per library (best kept)")
    args = parser.parse_args()

    works: dict[str, Callable[[bytes], bytes]] = {"callway": callway_proxy}
    for name, factory in (("sippy", _sippy_workload), ("sipmessage", _sipmessage_workload)):
        work = factory()
        if work is None:
            print(f"({name} not installed: skipped)")
        else:
            works[name] = work

    header = f"{'message':<15}{'library':<12}{'msgs/s':>12}{'callway/peer':>14}"
    print(header)
    print("-" * len(header))
    for label, data in MESSAGES.items():
        for work in works.values():
            check(work, data)
        rates = measure(works, data, args.count, args.seconds, args.rounds)
        ours = rates["callway"]
        for name, rate in rates.items():
            ratio = "" if name == "callway" else f"{ours / rate:.2f}x"
            print(f"{label:<15}{name:<12}{rate:>12,.0f}{ratio:>14}")


if __name__ == "__main__":
    main()
