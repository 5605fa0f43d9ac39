"""Asterisk extension matching and the documented pattern matching order."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callway.config.extensions import parse_extensions
from callway.pbx.dialplan.patterns import (
    extension_exists,
    find_extension,
    find_priority,
    match,
    match_callerid,
    sort_extensions,
)
from callway.pbx.dialplan_model import Dialplan

digits = st.text(alphabet="0123456789", min_size=0, max_size=20)


def dialplan(text: str) -> Dialplan:
    return parse_extensions(text, "extensions.conf")


def contexts_with(*extens: str, name: str = "ctx") -> Dialplan:
    body = "\n".join(f"exten => {exten},1,NoOp({exten})" for exten in extens)
    return dialplan(f"[{name}]\n{body}\n")


@pytest.mark.parametrize(
    ("pattern", "dialed", "expected"),
    [
        ("8006", "8006", True),
        ("8006", "80060", False),
        ("8006", "800", False),
        ("_80XX", "8006", True),
        ("_80XX", "800", False),
        ("_80XX", "80066", False),
        ("_80xx", "8099", True),  # X in either case
        ("_NXX", "200", True),
        ("_NXX", "100", False),
        ("_ZX", "10", True),
        ("_ZX", "01", False),
        ("_8[0-5]XX", "8599", True),
        ("_8[0-5]XX", "8699", False),
        ("_[135]", "3", True),
        ("_[135]", "2", False),
        ("_[a-d]1", "c1", True),
        ("_[a-d]1", "C1", False),  # set members are case-sensitive
        ("_a1", "A1", False),  # so are literal characters
        ("abc", "ABC", False),
        ("_X.", "12", True),
        ("_X.", "1", False),  # "." needs at least one more character
        ("_X!", "1", True),  # "!" takes zero or more
        ("_!", "", True),
        ("_.", "", False),
        ("_9.", "9*#ab", True),  # wildcards match any character
        ("_555-XXXX", "5551212", True),  # dashes outside sets are decoration
        ("555-1212", "5551212", True),
        ("_X", "5-", True),
        ("_[]1", "1", True),  # an empty set is ignored
        ("_[12", "1", False),  # an unclosed set matches nothing
        ("_[-1]", "-", False),  # dashes in the dialed string are dropped first
        ("_[1-]", "1", True),
        ("_X.1", "55", True),  # matching stops at the wildcard
    ],
)
def test_match(pattern: str, dialed: str, expected: bool) -> None:
    assert match(pattern, dialed) is expected


def test_documented_sort_order() -> None:
    # The example of Asterisk's "Pattern Matching" page, with its sorted result.
    written = ("_6XX1", "_64XX", "_640X", "_6.", "_64NX", "_6[45]NX", "_6[34]NX")
    assert sort_extensions(written) == (
        "_640X", "_64NX", "_64XX", "_6[34]NX", "_6[45]NX", "_6XX1", "_6.",
    )  # fmt: skip
    plan = contexts_with(*written)
    assert find_extension(plan, "ctx", "6421") == ("ctx", "_64NX")
    assert find_extension(plan, "ctx", "6401") == ("ctx", "_640X")
    assert find_extension(plan, "ctx", "6991") == ("ctx", "_6XX1")
    assert find_extension(plan, "ctx", "6") is None
    assert find_extension(plan, "ctx", "6abc") == ("ctx", "_6.")


@pytest.mark.parametrize(
    ("dialed", "expected"),
    [
        ("8006", "8006"),  # the literal beats every pattern
        ("8007", "_80XX"),  # fewer possibilities at position 2: "0" beats [0-5]
        ("8107", "_8[0-5]XX"),
        ("8607", "_X."),
        ("86", "_X."),
        ("8", "_!"),
        ("", "_!"),
        ("*1", "_!"),
    ],
)
def test_specificity_between_literal_and_patterns(dialed: str, expected: str) -> None:
    plan = contexts_with("_X.", "_80XX", "8006", "_8[0-5]XX", "_!")
    assert find_extension(plan, "ctx", dialed) == ("ctx", expected)


def test_sort_rules_for_sets_and_wildcards() -> None:
    # N (8) before Z (9) before X (10); same size: ASCII order of the members;
    # "." after sets, "!" after ".", the end of the pattern last.
    assert sort_extensions(("_X", "_Z", "_N", "_[2-9]")) == ("_N", "_[2-9]", "_Z", "_X")
    assert sort_extensions(("_[a-j]", "_X")) == ("_X", "_[a-j]")
    assert sort_extensions(("_[4-8]", "_[0-4]")) == ("_[0-4]", "_[4-8]")
    assert sort_extensions(("_1!", "_1", "_1.", "_1X")) == ("_1X", "_1.", "_1!", "_1")
    assert sort_extensions(("_1X", "10", "1", "_1")) == ("1", "10", "_1X", "_1")


def test_priorities_fall_through_to_less_specific_matches() -> None:
    # Asterisk's documented warning: 6410 runs 6410,1 then _641X,2.
    plan = dialplan(
        "[ctx]\n"
        "exten => 6410,1,SayDigits(987)\n"
        "exten => _641X,1,SayDigits(12345)\n"
        "exten => _641X,n,SayDigits(54321)\n"
    )
    first = find_priority(plan, "ctx", "6410", 1)
    second = find_priority(plan, "ctx", "6410", 2)
    assert first is not None and first.priority.args_raw == "987"
    assert second is not None and (second.extension, second.priority.args_raw) == (
        "_641X",
        "54321",
    )
    assert find_priority(plan, "ctx", "6410", 3) is None


INCLUDES = """\
[internal]
include => local
include => long-distance
exten => 100,1,NoOp(internal)

[local]
include => internal
include => deeper
exten => _2XX,1,NoOp(local)
exten => 100,1,NoOp(local 100)

[deeper]
exten => _3XX,1,NoOp(deeper)
exten => _1XX,1,NoOp(deeper)

[long-distance]
exten => _1NXXNXXXXXX,1,NoOp(ld)
exten => _3XX,1,NoOp(ld)
"""


def test_includes_are_searched_depth_first_in_order_without_loops() -> None:
    plan = dialplan(INCLUDES)
    assert find_extension(plan, "internal", "100") == ("internal", "100")
    assert find_extension(plan, "internal", "250") == ("local", "_2XX")
    # depth first: local's include "deeper" is searched before long-distance
    assert find_extension(plan, "internal", "350") == ("deeper", "_3XX")
    assert find_extension(plan, "internal", "18005551212") == ("long-distance", "_1NXXNXXXXXX")
    # the including context wins even over a more specific match further down
    assert find_extension(plan, "local", "100") == ("local", "100")
    # internal <-> local include each other: the search still ends
    assert find_extension(plan, "local", "999") is None
    assert not extension_exists(plan, "internal", "999")
    assert find_extension(plan, "nowhere", "100") is None


def test_callerid_matching() -> None:
    plan = dialplan(
        "[ctx]\n"
        "exten => 306,1,NoOp(anyone)\n"
        "exten => 306/_10[12],1,NoOp(101 or 102)\n"
        "exten => 306/103,1,NoOp(103)\n"
    )
    assert find_extension(plan, "ctx", "306", "101") == ("ctx", "306/_10[12]")
    assert find_extension(plan, "ctx", "306", "103") == ("ctx", "306/103")
    assert find_extension(plan, "ctx", "306", "104") == ("ctx", "306")
    assert find_extension(plan, "ctx", "306") == ("ctx", "306")
    assert match_callerid(None, None)
    assert match_callerid("", None)
    assert not match_callerid("_X", "")


@given(digits.filter(lambda s: len(s) >= 2))
def test_x_dot_matches_every_digit_string_of_two_or_more(dialed: str) -> None:
    assert match("_X.", dialed)


@given(digits.filter(lambda s: len(s) < 2))
def test_x_dot_needs_two_characters(dialed: str) -> None:
    assert not match("_X.", dialed)


@given(digits)
def test_a_literal_always_wins_over_patterns(dialed: str) -> None:
    if not dialed:
        return
    plan = contexts_with("_!", "_X.", "_X!", dialed)
    assert find_extension(plan, "ctx", dialed) == ("ctx", dialed)


@given(st.permutations(["_X.", "_80XX", "8006", "_8[0-5]XX", "_!", "_800X", "_8XXX"]))
def test_order_does_not_depend_on_how_the_file_lists_them(names: list[str]) -> None:
    assert sort_extensions(tuple(names)) == (
        "8006", "_800X", "_80XX", "_8[0-5]XX", "_8XXX", "_X.", "_!",
    )  # fmt: skip
