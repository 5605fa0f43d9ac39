"""Header names and structured values (RFC 3261 §7.3, §20, §25.1)."""

from __future__ import annotations

import pytest

from callway.sip.errors import ParseError
from callway.sip.headers import (
    COMPACT_FORMS,
    CSeq,
    NameAddr,
    Via,
    canonical_name,
    format_params,
    header_key,
    parse_cseq,
    parse_name_addr,
    parse_nonneg_int,
    parse_params,
    parse_via,
    quote,
    split_list,
    unquote_string,
)
from callway.sip.uri import AbsoluteURI, SipURI

# -- names ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("compact", "key"),
    [("i", "call-id"), ("m", "contact"), ("e", "content-encoding"), ("l", "content-length"),
     ("c", "content-type"), ("f", "from"), ("s", "subject"), ("k", "supported"), ("t", "to"),
     ("v", "via"), ("o", "event"), ("u", "allow-events"), ("r", "refer-to"),
     ("b", "referred-by"), ("x", "session-expires")],
)  # fmt: skip
def test_compact_forms_expand(compact: str, key: str) -> None:
    assert header_key(compact) == key
    assert header_key(compact.upper()) == key
    assert COMPACT_FORMS[compact] == key


def test_header_key_is_case_insensitive_and_trimmed() -> None:
    assert header_key("VIA ") == "via"
    assert header_key("Call-Id") == "call-id"
    assert header_key("X-Custom") == "x-custom"


@pytest.mark.parametrize(
    ("key", "name"),
    [("call-id", "Call-ID"), ("cseq", "CSeq"), ("www-authenticate", "WWW-Authenticate"),
     ("via", "Via"), ("max-forwards", "Max-Forwards"), ("x-foo-bar", "X-Foo-Bar")],
)  # fmt: skip
def test_canonical_names(key: str, name: str) -> None:
    assert canonical_name(key) == name


# -- lists, parameters, quoted strings ---------------------------------------------


def test_split_list_outside_quotes_and_angle_brackets() -> None:
    value = '"Doe, John" <sip:a@b;x=1,2>;q=0.5, <sip:c@d>, sip:e@f'
    assert split_list(value) == ['"Doe, John" <sip:a@b;x=1,2>;q=0.5', "<sip:c@d>", "sip:e@f"]


def test_split_list_escaped_quote_and_empty_items() -> None:
    assert split_list('"a\\", b" <sip:x@y>, ,') == ['"a\\", b" <sip:x@y>']
    assert split_list(" single ") == ["single"]


def test_split_list_unterminated_quote() -> None:
    with pytest.raises(ParseError):
        split_list('"a, b')


def test_parse_params() -> None:
    assert parse_params(";tag=1;lr;Q = 0.5") == {"tag": "1", "lr": None, "q": "0.5"}
    assert parse_params("branch=z9hG4bK1") == {"branch": "z9hG4bK1"}
    assert parse_params(';x="a;b=c"') == {"x": '"a;b=c"'}
    assert parse_params(";received=[2001:db8::1]") == {"received": "[2001:db8::1]"}
    assert parse_params("") == {}


@pytest.mark.parametrize(
    "text", [";;", ";tag=1;", ";=1", ";tag=", ";a b=1", ";tag=a b", ';x="open', ';x=a"b', ";é=1"]
)
def test_parse_params_rejects_malformed(text: str) -> None:
    with pytest.raises(ParseError):
        parse_params(text)


def test_format_params_inverts_parse_params() -> None:
    params = {"tag": "1", "lr": None, "x": '"a;b"'}
    assert parse_params(format_params(params)) == params


@pytest.mark.parametrize("text", ["", "plain", 'say "hi"', "back\\slash", "ctl\x00\x07\x7f"])
def test_quote_round_trips(text: str) -> None:
    assert unquote_string(quote(text)) == text


def test_quote_replaces_line_breaks() -> None:
    assert quote("a\r\nb") == '"a  b"'


@pytest.mark.parametrize("text", ['"open', "no quotes", '"a"b"', '"dangling\\"', '"'])
def test_unquote_rejects_malformed(text: str) -> None:
    with pytest.raises(ParseError):
        unquote_string(text)


# -- name-addr / addr-spec -----------------------------------------------------------


def test_name_addr_with_quoted_display_and_escapes() -> None:
    addr = parse_name_addr('"A \\"B\\" <c>" <sip:a@b.example;transport=tcp>;tag=1')
    assert addr.display == 'A "B" <c>'
    assert isinstance(addr.uri, SipURI) and addr.uri.params == {"transport": "tcp"}
    assert addr.tag == "1"


def test_name_addr_token_display_spacing_is_normalised() -> None:
    addr = parse_name_addr("  Bob   Smith <sip:bob@b> ; tag = x ")
    assert addr.display == "Bob Smith"
    assert addr.params == {"tag": "x"}


def test_name_addr_without_space_before_angle() -> None:
    assert parse_name_addr("caller<sip:caller@example.com>").display == "caller"


def test_addr_spec_params_belong_to_the_header() -> None:
    addr = parse_name_addr("sip:+1@gw.example.net;user=phone;tag=9")
    assert isinstance(addr.uri, SipURI) and addr.uri.params == {}
    assert addr.params == {"user": "phone", "tag": "9"}
    angle = parse_name_addr("<sip:+1@gw.example.net;user=phone>;tag=9")
    assert isinstance(angle.uri, SipURI) and angle.uri.params == {"user": "phone"}
    assert angle.params == {"tag": "9"}


def test_addr_spec_may_carry_a_quoted_param_with_angle() -> None:
    addr = parse_name_addr('sip:a@b;x="<"')
    assert addr.display is None and addr.params == {"x": '"<"'}


def test_name_addr_of_another_scheme() -> None:
    addr = parse_name_addr("<tel:+1-201-555-0123>;tag=x")
    assert isinstance(addr.uri, AbsoluteURI)
    with pytest.raises(ParseError):
        addr.sip_uri  # noqa: B018


@pytest.mark.parametrize(
    "value",
    [
        '"Mr. J. User <sip:j.user@example.com>',  # RFC 4475 §3.1.2.6
        "Bell, Alexander <sip:a.g.bell@example.com>",  # §3.1.2.15
        "< sip:t.watson@example.org >",  # §3.1.2.14
        "sip:user@example.com?Route=%3Csip:x%3E",  # §3.1.2.13
        "sip:a@b, sip:c@d",
        "sip:user @example.com",
        "<sip:a@b>junk",
        "<sip:a@b",
        "<>",
        "",
        '"x" "y" <sip:a@b>',
        "<sip:a@b>;;",
        "<sip:a b@c>",
    ],
)
def test_name_addr_rejects_malformed(value: str) -> None:
    with pytest.raises(ParseError):
        parse_name_addr(value)


def test_name_addr_str() -> None:
    addr = parse_name_addr('"Alice \\"A\\"" <sip:alice@a.example>;tag=1')
    assert str(addr) == '"Alice \\"A\\"" <sip:alice@a.example>;tag=1'
    assert parse_name_addr(str(addr)) == addr
    assert str(NameAddr(parse_name_addr("sip:x@y").uri)) == "<sip:x@y>"


# -- Via ---------------------------------------------------------------------------------


def test_via_basic() -> None:
    via = parse_via("SIP/2.0/udp pc33.example.com:5060;branch=z9hG4bK776;rport;received=1.2.3.4")
    assert via == Via(
        "UDP",
        "pc33.example.com",
        5060,
        {"branch": "z9hG4bK776", "rport": None, "received": "1.2.3.4"},
    )
    assert via.branch == "z9hG4bK776"
    assert via.sent_by == ("pc33.example.com", 5060)
    assert str(via) == "SIP/2.0/UDP pc33.example.com:5060;branch=z9hG4bK776;rport;received=1.2.3.4"


def test_via_with_lws_everywhere() -> None:
    via = parse_via("SIP  /   2.0 /UDP    192.0.2.2 : 5060 ;  branch = z9hG4bK1")
    assert (via.transport, via.host, via.port, via.branch) == ("UDP", "192.0.2.2", 5060, "z9hG4bK1")


def test_via_ipv6_sent_by_and_received() -> None:
    via = parse_via("SIP/2.0/TCP [2001:db8::9:1]:6050;received=[2001:db8::9:255];branch=z9hG4bK")
    assert via.sent_by == ("[2001:db8::9:1]", 6050)
    assert via.params["received"] == "[2001:db8::9:255]"


@pytest.mark.parametrize(
    "value",
    ["SIP/2.0/UDP", "SIP/2.0 UDP host", "SIP/3.0/UDP host", "HTTP/1.1/TCP host",
     "SIP/2.0/UDP host port", "SIP/2.0/UDP host;;", "SIP/2.0/UDP 192.0.2.15;;,;,,",
     "SIP/2.0/UDP [::1", "SIP/2.0/UDP host:99999", "SIP/2.0/\u212aDP host", ""],
)  # fmt: skip
def test_via_rejects_malformed(value: str) -> None:
    with pytest.raises(ParseError):
        parse_via(value)


# -- CSeq and integers ---------------------------------------------------------------


def test_cseq() -> None:
    assert parse_cseq("0009\r\n  INVITE".replace("\r\n", "")) == CSeq(9, "INVITE")
    assert parse_cseq(" 4294967295  ACK ") == CSeq(4294967295, "ACK")
    assert str(CSeq(1, "BYE")) == "1 BYE"


@pytest.mark.parametrize(
    "value",
    ["", "1", "INVITE", "1 INVITE extra", "-1 INVITE", "4294967296 INVITE",
     "36893488147419103232 REGISTER", "1 INV/ITE", "\u0661 INVITE", "1" * 5000 + " INVITE"],
)  # fmt: skip
def test_cseq_rejects_malformed(value: str) -> None:
    with pytest.raises(ParseError):
        parse_cseq(value)


def test_nonneg_int() -> None:
    assert parse_nonneg_int(" 70 ", "Max-Forwards", 255) == 70
    for bad in ("256", "-1", "", "1e3", "\u00b2", "9" * 5000):
        with pytest.raises(ParseError):
            parse_nonneg_int(bad, "Max-Forwards", 255)
