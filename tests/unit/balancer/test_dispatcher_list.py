"""Kamailio's dispatcher.list: the seed's file, the documented examples and every error path."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callway.balancer.model import DestState
from callway.config.dispatcher import load_dispatcher_list, parse_attrs, parse_dispatcher_list
from callway.config.errors import ConfigError

SEED = """\
# dispatcher.list: setid destination flags priority attributes
1 sip:192.168.0.1 0 1 weight=50
1 sip:192.168.0.2 0 1 weight=50
"""

# The sample from Kamailio's dispatcher admin guide (dispatcher list file example).
KAMAILIO_SAMPLE = """\
#
# dispatcher destination sets (groups)
#

# line format
# setid(int) destination(sip uri) flags(int,opt) priority(int,opt) attributes(str,opt)

# proxies
2 sip:127.0.0.1:5080;transport=tcp 0 10 class=4;prefix=448;strip=2
2 sip:127.0.0.1:5082;px=vx 0 5 duid=abc;socket=udp:192.168.0.125:5060;pipe=p10

# gateways
1 sip:127.0.0.1:7070 0 0 duid=xyz;maxload=20
1 sip:127.0.0.1:7072 0 5
1 sip:127.0.0.1:7074
"""


def error_of(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        parse_dispatcher_list(text, "test.list")
    return caught.value


def test_seed_list_parses_unchanged() -> None:
    sets = parse_dispatcher_list(SEED)
    assert list(sets) == [1]
    dests = sets[1].destinations
    assert [d.uri for d in dests] == ["sip:192.168.0.1", "sip:192.168.0.2"]
    for dest in dests:
        assert dest.flags == DestState.ACTIVE
        assert dest.priority == 1
        assert dest.weight == 50
        assert dest.attrs == "weight=50"
        assert dest.attributes == {"weight": "50"}
        assert dest.port is None
        assert dest.transport is None
    assert dests[0].host == "192.168.0.1"
    assert dests[0].line == 2


def test_kamailio_sample_parses() -> None:
    sets = parse_dispatcher_list(KAMAILIO_SAMPLE)
    assert sorted(sets) == [1, 2]
    proxies = sets[2].destinations
    assert proxies[0].uri == "sip:127.0.0.1:5080;transport=tcp"
    assert proxies[0].transport == "tcp"
    assert proxies[0].port == 5080
    assert proxies[0].attributes == {"class": "4", "prefix": "448", "strip": "2"}
    assert proxies[1].duid == "abc"
    assert proxies[1].socket == "udp:192.168.0.125:5060"
    assert proxies[1].attributes["pipe"] == "p10"
    gateways = sets[1].destinations
    # Highest priority first; file order among equal priorities.
    assert [d.uri for d in gateways] == [
        "sip:127.0.0.1:7072",
        "sip:127.0.0.1:7070",
        "sip:127.0.0.1:7074",
    ]
    assert gateways[1].duid == "xyz"
    assert gateways[1].maxload == 20
    assert gateways[2].priority == 0
    assert gateways[2].attrs == ""


@pytest.mark.parametrize(
    ("flags", "expected", "letters"),
    [
        ("0", DestState.ACTIVE, "AX"),
        ("1", DestState.INACTIVE, "IX"),
        ("2", DestState.TRYING, "TX"),
        ("4", DestState.DISABLED, "DX"),
        ("8", DestState.PROBING, "AP"),
        ("9", DestState.INACTIVE | DestState.PROBING, "IP"),
        ("0x8", DestState.PROBING, "AP"),
        ("0X0a", DestState.TRYING | DestState.PROBING, "TP"),
        ("32", DestState.NOPING, "AN"),
    ],
)
def test_flags(flags: str, expected: DestState, letters: str) -> None:
    dest = parse_dispatcher_list(f"3 sip:10.0.0.1 {flags}")[3].destinations[0]
    assert dest.flags == expected
    assert dest.flags.state_letters() == letters


def test_comments_whitespace_and_sips() -> None:
    text = "\n   \n\t# note\n 7\tsips:pbx.example.com:5061  0  3  weight=10;  # trailing\r\n"
    dest = parse_dispatcher_list(text)[7].destinations[0]
    assert dest.secure
    assert dest.priority == 3
    assert dest.weight == 10
    assert dest.attrs == "weight=10;"
    assert dest.attributes == {"weight": "10"}


def test_all_special_attributes() -> None:
    text = (
        "1 sip:10.0.0.1:5070 0 0 "
        "weight=20;rweight=30;duid=n1;maxload=5;socket=tcp:[::1]:5060;"
        "ping_from=sip:probe@lb.example.com;Custom=Yes"
    )
    dest = parse_dispatcher_list(text)[1].destinations[0]
    assert (dest.weight, dest.rweight, dest.duid, dest.maxload) == (20, 30, "n1", 5)
    assert dest.socket == "tcp:[::1]:5060"
    assert dest.ping_from == "sip:probe@lb.example.com"
    assert dest.attributes["custom"] == "Yes"
    assert dest.load_key == "n1"


def test_load_key_defaults_to_uri() -> None:
    dest = parse_dispatcher_list("1 sip:10.0.0.1")[1].destinations[0]
    assert dest.load_key == "sip:10.0.0.1"


def test_empty_text_gives_no_sets() -> None:
    assert parse_dispatcher_list("# nothing\n\n") == {}


def test_load_from_file(tmp_path: Path) -> None:
    path = tmp_path / "dispatcher.list"
    path.write_text(SEED, encoding="utf-8")
    assert load_dispatcher_list(path)[1].destinations[1].uri == "sip:192.168.0.2"
    bad = tmp_path / "bad.list"
    bad.write_text("1 sip:10.0.0.1\n1 tel:+123\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_dispatcher_list(bad)
    assert caught.value.filename == str(bad)
    assert caught.value.line == 2


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        ("1", "expected 'setid destination"),
        ("x sip:10.0.0.1", "set id"),
        ("-1 sip:10.0.0.1", "set id"),
        ("1 tel:+15551234", "sip: or sips:"),
        ("1 10.0.0.1", "not a valid SIP URI"),
        ("1 sip:10.0.0.1 z", "flags"),
        ("1 sip:10.0.0.1 64", "unknown bits"),
        ("1 sip:10.0.0.1 0 high", "priority"),
        ("1 sip:10.0.0.1 0 0 weight=150", "weight=150 is out of range"),
        ("1 sip:10.0.0.1 0 0 weight=abc", "weight must be an integer"),
        ("1 sip:10.0.0.1 0 0 rweight=-1", "rweight=-1 is out of range"),
        ("1 sip:10.0.0.1 0 0 maxload=-2", "maxload=-2"),
        ("1 sip:10.0.0.1 0 0 socket=10.0.0.9", "socket"),
        ("1 sip:10.0.0.1 0 0 socket=udp:10.0.0.9:99999", "socket"),
        ("1 sip:10.0.0.1 0 0 socket=foo:10.0.0.9", "socket"),
        ("1 sip:10.0.0.1 0 0 ping_from=mailto:x@y", "ping_from"),
        ("1 sip:10.0.0.1 0 0 =5", "attribute without a name"),
        ("1 sip:10.0.0.1 0 0 weight=5 extra", "unexpected text"),
    ],
)
def test_errors_name_the_line(line: str, fragment: str) -> None:
    error = error_of(f"# header\n1 sip:10.9.9.9\n{line}\n")
    assert error.line == 3
    assert error.filename == "test.list"
    assert fragment in error.problem
    assert str(error).startswith("test.list:3: ")


def test_duplicate_destination_in_a_set_is_refused() -> None:
    error = error_of("1 sip:10.0.0.1\n2 sip:10.0.0.1\n1 SIP:10.0.0.1 0 5\n")
    assert error.line == 3
    assert "line 1" in error.problem


def test_parse_attrs() -> None:
    assert parse_attrs("") == {}
    assert parse_attrs("a=1;B=two;flag;") == {"a": "1", "b": "two", "flag": ""}


@given(
    setid=st.integers(0, 10_000),
    last_octet=st.integers(1, 254),
    port=st.none() | st.integers(1, 65535),
    flags=st.sampled_from([0, 1, 2, 4, 8, 9, 10, 32]),
    priority=st.integers(0, 1000),
    weight=st.integers(0, 100),
    rweight=st.integers(0, 100),
    maxload=st.integers(0, 5000),
)
def test_generated_lines_round_trip(
    setid: int,
    last_octet: int,
    port: int | None,
    flags: int,
    priority: int,
    weight: int,
    rweight: int,
    maxload: int,
) -> None:
    uri = f"sip:10.0.0.{last_octet}" + (f":{port}" if port is not None else "")
    attrs = f"weight={weight};rweight={rweight};maxload={maxload};duid=d{last_octet}"
    sets = parse_dispatcher_list(f"{setid} {uri} {flags} {priority} {attrs}\n")
    dest = sets[setid].destinations[0]
    assert (dest.uri, int(dest.flags), dest.priority, dest.attrs) == (uri, flags, priority, attrs)
    assert (dest.weight, dest.rweight, dest.maxload) == (weight, rweight, maxload)
    assert dest.port == port
