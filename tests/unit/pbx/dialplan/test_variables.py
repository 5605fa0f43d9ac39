"""${...} substitution, substrings, functions, $[...] expressions, argument splitting."""

from __future__ import annotations

import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callway.config.extensions import parse_extensions
from callway.pbx.dialplan.args import ArgumentError, GotoTarget, parse_goto, split_args
from callway.pbx.dialplan.expr import evaluate
from callway.pbx.dialplan.variables import (
    ChannelVariables,
    check_condition,
    load_globals,
    substring,
)


@pytest.fixture
def scope() -> ChannelVariables:
    return ChannelVariables(
        channel_name="PJSIP/8005-00000001",
        uniqueid="1700000000.1",
        context="from-external",
        exten="18005551212",
        priority=2,
        callerid_num="8005",
        callerid_name="Alice",
        variables={"NAME": "DIALSTATUS", "DIALSTATUS": "BUSY", "A": "B", "AB": "nested"},
        globals={"TRUNK": "PJSIP/provider", "A": "global-a"},
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("${EXTEN}", "18005551212"),
        ("${CONTEXT},${PRIORITY}", "from-external,2"),
        ("${CHANNEL} ${UNIQUEID}", "PJSIP/8005-00000001 1700000000.1"),
        ("Dial(${TRUNK}/${EXTEN})", "Dial(PJSIP/provider/18005551212)"),
        ("${A}", "B"),  # the channel's variable hides the global
        ("${UNSET}", ""),
        ("${exten}", ""),  # names are case-sensitive (Asterisk 12+)
        ("${DIALSTATUS}", "BUSY"),
        ("${${NAME}}", "BUSY"),  # nested: the inside is substituted first
        ("${A${A}}", "nested"),
        ("${EXTEN:1}", "8005551212"),
        ("${EXTEN:-4}", "1212"),
        ("${EXTEN:1:3}", "800"),
        ("${EXTEN:-7:3}", "555"),
        ("${EXTEN:0:-4}", "1800555"),
        ("${EXTEN:1:-1}", "800555121"),
        ("${EXTEN::3}", "180"),
        ("${EXTEN:20}", ""),
        ("${CALLERID(num)}", "8005"),
        ("${CALLERID(name)}", "Alice"),
        ("${CALLERID(all)}", '"Alice" <8005>'),
        ("${CALLERID(num):1}", "005"),
        ("${LEN(${EXTEN})}", "11"),
        ("${LEN()}", "0"),
        ("${IF($[${LEN(${EXTEN})} > 4]?long:short)}", "long"),
        ("${IF(0?yes:no)}", "no"),
        ("${IF(1?yes)}", "yes"),
        ("${ISNULL(${UNSET})}${EXISTS(${A})}", "11"),
        ("${TOUPPER(abc)}${TOLOWER(DEF)}", "ABCdef"),
        ("${GLOBAL(A)}", "global-a"),
        ("$[1 + 2]", "3"),
        ("cost $5 and $[2*3]", "cost $5 and 6"),
        ('$["${DIALSTATUS}" = "BUSY"]', "1"),
        ("$[${DIALSTATUS} != BUSY]", "0"),
        ("$[${EXTEN:0:1} = 1]", "1"),
        ("no refs", "no refs"),
        ("$", "$"),
    ],
)
def test_substitute(scope: ChannelVariables, text: str, expected: str) -> None:
    assert scope.substitute(text) == expected


def test_unterminated_reference_is_logged(
    scope: ChannelVariables, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, "callway.pbx.dialplan"):
        assert scope.substitute("x${EXTEN") == "x18005551212"
    assert "missing '}'" in caplog.text


def test_unknown_function_is_empty_with_a_warning(
    scope: ChannelVariables, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, "callway.pbx.dialplan"):
        assert scope.substitute("[${NOSUCH(x)}]") == "[]"
    assert "NOSUCH" in caplog.text


def test_set_variables_and_functions(scope: ChannelVariables) -> None:
    scope.set("__INHERITED", "yes")
    assert scope.get("INHERITED") == "yes"
    scope.set("INHERITED", "")
    assert scope.get("INHERITED") is None
    scope.set("CALLERID(num)", "5551234")
    scope.set("CALLERID(name)", "Bob")
    assert scope.substitute("${CALLERID(all)}") == '"Bob" <5551234>'
    scope.set("CALLERID(all)", '"Carol Q" <8006>')
    assert (scope.callerid_name, scope.callerid_num) == ("Carol Q", "8006")
    scope.set("GLOBAL(COUNTER)", "7")
    assert scope.globals["COUNTER"] == "7"


def test_globals_are_substituted_in_file_order() -> None:
    plan = parse_extensions(
        "[globals]\nPROVIDER=trunk\nTRUNK=PJSIP/${PROVIDER}\n[ctx]\nexten => 1,1,NoOp()\n",
        "extensions.conf",
    )
    assert load_globals(plan) == {"PROVIDER": "trunk", "TRUNK": "PJSIP/trunk"}


@pytest.mark.parametrize(
    ("offset", "length", "expected"),
    [(0, None, "abcdef"), (2, None, "cdef"), (-2, None, "ef"), (-10, 2, "ab"),
     (1, 2, "bc"), (1, -2, "bcd"), (4, -3, ""), (6, None, ""), (0, 0, "")],
)  # fmt: skip
def test_substring(offset: int, length: int | None, expected: str) -> None:
    assert substring("abcdef", offset, length) == expected


@given(st.text(max_size=12), st.integers(-15, 15), st.integers(-15, 15))
def test_substring_is_a_slice_of_the_value(value: str, offset: int, length: int) -> None:
    result = substring(value, offset, length)
    assert result in value
    assert len(result) <= (length if length >= 0 else len(value))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1 = 1", "1"),
        ("1=2", "0"),
        ("10 > 9", "1"),  # numeric comparison
        ('"10" > "9"', "0"),  # quoted: strings
        ("abc < abd", "1"),
        ("2 <= 2 & 3 >= 4", "0"),
        ("0 | 5", "5"),
        ("foo | bar", "foo"),
        ("7 & 8", "7"),
        ("(1 + 2) * 3", "9"),
        ("1 + 2 * 3", "7"),
        ("7 / 2", "3.5"),
        ("7 % 4", "3"),
        ("-3 + 1", "-2"),
        ("!0", "1"),
        ("!abc", "0"),
        ("1 ? yes :: no", "yes"),
        ("0 ? yes :: no", "no"),
        ('"" ? yes :: no', "no"),
        ("12345 : 123", "3"),
        ('abc : "(b)"', ""),  # anchored, with a group: the group or ""
        ('abc =~ "(b)"', "b"),
        ("abc : b", "0"),  # no group: the length matched
        ("a ~~ b", "ab"),
        ("1 / 0", "0"),
        ("", ""),
        ("= BUSY", ""),  # syntax error (an unset variable): empty result
        ("(1", ""),
        ("1 2", ""),
    ],
)
def test_expressions(text: str, expected: str) -> None:
    assert evaluate(text) == expected


@given(st.integers(-1000, 1000), st.integers(-1000, 1000))
def test_expression_arithmetic_and_comparison(a: int, b: int) -> None:
    assert evaluate(f"{a} + {b}") == str(a + b)
    assert evaluate(f"{a} - {b}") == str(a - b)
    assert evaluate(f"{a} * {b}") == str(a * b)
    assert evaluate(f"{a} < {b}") == ("1" if a < b else "0")
    assert evaluate(f"{a} = {b}") == ("1" if a == b else "0")


@pytest.mark.parametrize(
    ("text", "expected"),
    [("", False), ("  ", False), ("0", False), ("1", True), ("-2", True),
     ("0abc", False), ("abc", True), ("00", False)],
)  # fmt: skip
def test_check_condition(text: str, expected: bool) -> None:
    assert check_condition(text) is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", []),
        ("PJSIP/8006", ["PJSIP/8006"]),
        ("PJSIP/8006,30,tT", ["PJSIP/8006", "30", "tT"]),
        ("a,,c", ["a", "", "c"]),
        ("a,", ["a", ""]),
        ("PJSIP/8006,,m(class,x)", ["PJSIP/8006", "", "m(class,x)"]),
        ('"a,b",c', ["a,b", "c"]),
        ("a\\,b,c", ["a,b", "c"]),
        ("a\\\\,b", ["a\\", "b"]),
        (" a , b ", [" a ", " b "]),  # spaces are significant
        ("f(a,(b,c)),d", ["f(a,(b,c))", "d"]),
    ],
)
def test_split_args(text: str, expected: list[str]) -> None:
    assert split_args(text) == expected


def test_split_args_limit() -> None:
    assert split_args("a,b,c,d", limit=2) == ["a", "b,c,d"]


@given(st.lists(st.text(alphabet="abc123/ ", max_size=5), min_size=1, max_size=6))
def test_split_args_inverts_joining(parts: list[str]) -> None:
    assert split_args(",".join(parts)) == (parts if parts != [""] else [])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1", GotoTarget(None, None, "1")),
        ("busy", GotoTarget(None, None, "busy")),
        ("s,1", GotoTarget(None, "s", "1")),
        ("other,8006,dial", GotoTarget("other", "8006", "dial")),
        (" ctx , 100 , +2 ", GotoTarget("ctx", "100", "+2")),
    ],
)
def test_parse_goto(text: str, expected: GotoTarget) -> None:
    assert parse_goto(text) == expected


@pytest.mark.parametrize("text", ["", "a,b,c,d", "a,,1"])
def test_parse_goto_rejects(text: str) -> None:
    with pytest.raises(ArgumentError):
        parse_goto(text)
