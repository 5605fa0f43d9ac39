"""extensions.conf -> Dialplan: the seed dialplan, priorities, labels, includes, error paths."""

from __future__ import annotations

from pathlib import Path

import pytest

from callway.config.defaults import DEMO_EXTENSIONS_CONF
from callway.config.errors import ConfigError, ConfigWarning
from callway.config.extensions import load_extensions, parse_extensions
from callway.pbx.dialplan_model import Context, Dialplan, Include, Priority

# The dialplan from the source document (SEED.md section 2), byte for byte.
SEED_EXTENSIONS_CONF = """\
; extensions.conf
[from-external]
exten => _80XX,1,NoOp()
 same => n,Dial(PJSIP/${EXTEN})
"""


def parse(text: str) -> Dialplan:
    return parse_extensions(text, "extensions.conf")


def context(body: str, name: str = "ctx") -> Context:
    return parse(f"[{name}]\n{body}\n").contexts[name]


def steps(ctx: Context, exten: str) -> list[tuple[int, str, str, str]]:
    return [(p.number, p.label, p.app, p.args_raw) for p in ctx.extensions[exten]]


def error_of(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        parse(text)
    return caught.value


def test_seed_dialplan() -> None:
    plan = parse(SEED_EXTENSIONS_CONF)
    assert plan == parse(DEMO_EXTENSIONS_CONF)
    assert list(plan.contexts) == ["from-external"]
    ctx = plan.contexts["from-external"]
    assert ctx.extensions == {
        "_80XX": (
            Priority(1, "", "NoOp", "", "extensions.conf", 3),
            Priority(2, "", "Dial", "PJSIP/${EXTEN}", "extensions.conf", 4),
        )
    }
    assert (ctx.includes, ctx.hints, plan.global_vars, plan.warnings) == ((), {}, {}, ())


def test_numbered_next_and_same_priorities() -> None:
    ctx = context(
        "exten => 100,1,Answer()\n"
        "exten => 100,n,Playback(hello-world)\n"
        "exten => 100,5,Wait(1)\n"
        "same => n,Hangup()\n"
        "exten => 100,s+2,Verbose(1,seven)"
    )
    assert steps(ctx, "100") == [
        (1, "", "Answer", ""),
        (2, "", "Playback", "hello-world"),
        (5, "", "Wait", "1"),
        (6, "", "Hangup", ""),
        (8, "", "Verbose", "1,seven"),
    ]


def test_priorities_are_sorted_and_next_follows_the_section() -> None:
    # As in Asterisk, 'n' continues from the last priority written, even for another exten.
    ctx = context("exten => a,3,NoOp(three)\nexten => a,1,NoOp(one)\nexten => b,n,NoOp(two)")
    assert [p.number for p in ctx.extensions["a"]] == [1, 3]
    assert steps(ctx, "b") == [(2, "", "NoOp", "two")]


def test_labels_and_label_references() -> None:
    ctx = context(
        "exten => s,1(start),Answer()\n"
        " same => n(loop),Background(menu)\n"
        " same => n,WaitExten(5)\n"
        "exten => s,loop+10,Goto(start)"
    )
    assert steps(ctx, "s") == [
        (1, "start", "Answer", ""),
        (2, "loop", "Background", "menu"),
        (3, "", "WaitExten", "5"),
        (12, "", "Goto", "start"),
    ]
    label = ctx.find_label("s", "loop")
    assert label is not None and label.number == 2
    assert ctx.find_label("s", "nope") is None
    assert ctx.priority("s", 3) == ctx.extensions["s"][2]


def test_application_forms() -> None:
    ctx = context(
        "exten => 1,1,Answer\n"
        "exten => 2,1,Set(CALLERID(name)=Support (desk))\n"
        "exten => 3,1,Dial(PJSIP/8005&PJSIP/8006,30,tT)\n"
        'exten => 4,1,NoOp("quoted, with comma")\n'
        "exten => 5,1,Set(X=a\\;b)"
    )
    assert steps(ctx, "1") == [(1, "", "Answer", "")]
    assert steps(ctx, "2") == [(1, "", "Set", "CALLERID(name)=Support (desk)")]
    assert steps(ctx, "3") == [(1, "", "Dial", "PJSIP/8005&PJSIP/8006,30,tT")]
    assert steps(ctx, "4") == [(1, "", "NoOp", '"quoted, with comma"')]
    assert steps(ctx, "5") == [(1, "", "Set", "X=a;b")]


def test_patterns_with_commas_in_brackets_and_callerid() -> None:
    ctx = context("exten => _[1,2]XX,1,NoOp()\nexten => 100/5551234,1,Hangup()")
    assert list(ctx.extensions) == ["_[1,2]XX", "100/5551234"]


def test_hints_include_ignorepat_and_timing() -> None:
    plan = parse(
        "[phones]\nexten => 8005,hint,PJSIP/8005\nexten => 8005,1,Dial(PJSIP/8005)\n"
        "ignorepat => 9\n"
        "[office]\ninclude => phones\ninclude => daytime,08:00-17:00,mon-fri,*,*\n"
        "[daytime]\nexten => 0,1,Dial(PJSIP/operator)\n"
    )
    phones = plan.contexts["phones"]
    assert phones.hints == {"8005": "PJSIP/8005"}
    assert steps(phones, "8005") == [(1, "", "Dial", "PJSIP/8005")]
    assert phones.ignorepats == ("9",)
    assert plan.contexts["office"].includes == (
        Include("phones", "", "extensions.conf", 6),
        Include("daytime", "08:00-17:00,mon-fri,*,*", "extensions.conf", 7),
    )
    assert plan.warnings == ()


def test_general_globals_and_merged_contexts() -> None:
    plan = parse(
        "[general]\nstatic=yes\nwriteprotect=no\ncolour=red\n"
        "[globals]\nTRUNK=PJSIP/provider\nCONSOLE => Console/dsp\n"
        "[a]\nexten => 1,1,NoOp()\n[b]\nexten => 2,1,NoOp()\n[a]\nexten => 3,1,NoOp()\n"
    )
    assert plan.general == {"static": "yes", "writeprotect": "no", "colour": "red"}
    assert plan.global_vars == {"TRUNK": "PJSIP/provider", "CONSOLE": "Console/dsp"}
    assert list(plan.contexts) == ["a", "b"]
    assert list(plan.contexts["a"].extensions) == ["1", "3"]
    assert plan.warnings == (
        ConfigWarning("extensions.conf", 4, "unknown [general] setting 'colour'; ignored"),
    )


def test_templates_in_extensions_conf() -> None:
    plan = parse(
        "[common](!)\nexten => i,1,Playback(invalid)\n"
        "[sales](common)\nexten => 1,1,NoOp()\n"
    )
    assert list(plan.contexts) == ["sales"]
    assert list(plan.contexts["sales"].extensions) == ["i", "1"]


def test_warnings_for_switch_and_undefined_include() -> None:
    plan = parse("[a]\nswitch => Realtime/x@y\ninclude => nowhere\n")
    assert plan.warnings == (
        ConfigWarning("extensions.conf", 2, "'switch' in [a] is not supported; ignored"),
        ConfigWarning("extensions.conf", 3, "[a] includes undefined context 'nowhere'"),
    )


def test_includes_through_a_loader() -> None:
    files = {"phones.conf": "exten => 8006,1,Dial(PJSIP/8006)\n"}
    plan = parse_extensions(
        "[from-external]\n#include phones.conf\n", "extensions.conf",
        lambda name: (name, files[name]),
    )  # fmt: skip
    (priority,) = plan.contexts["from-external"].extensions["8006"]
    assert (priority.filename, priority.line) == ("phones.conf", 1)


def test_load_extensions_reads_a_file(tmp_path: Path) -> None:
    path = tmp_path / "extensions.conf"
    path.write_text(SEED_EXTENSIONS_CONF)
    plan = load_extensions(path)
    assert steps(plan.contexts["from-external"], "_80XX")[1] == (2, "", "Dial", "PJSIP/${EXTEN}")
    assert plan.contexts["from-external"].extensions["_80XX"][0].filename == str(path)


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ("exten => n,NoOp()", "'exten =>' needs PRIORITY,App(args), got 'n,NoOp()'"),
        ("exten => 100", "expected 'exten => EXTEN,PRIORITY,App(args)', got '100'"),
        ("exten => ,1,NoOp()", "expected 'exten => EXTEN,PRIORITY,App(args)', got ',1,NoOp()'"),
        ("exten => 100,1,", "'exten =>' needs PRIORITY,App(args), got '100,1,'"),
        ("exten => 100,0,NoOp()", "priority must be 1 or more, got '0'"),
        ("exten => 100,1+x,NoOp()", "bad priority offset in '1+x'"),
        ("exten => 100,1(bad label),NoOp()", "bad priority label in '1(bad label)' "
         "(expected e.g. 'n(label)')"),
        ("exten => 100,1(open,NoOp()", "bad priority label in '1(open' (expected e.g. 'n(label)')"),
        ("exten => 100,later,NoOp()", "bad priority 'later' (expected a number, n, s, hint, "
         "or a label defined earlier for extension '100')"),
        ("exten => 100,1,Dial,PJSIP/8005", "write the application as App(args), not "
         "'Dial,PJSIP/8005'"),
        ("exten => 100,1,Dial(PJSIP/8005", "application call 'Dial(PJSIP/8005' does not end "
         "with ')'"),
        ("exten => 100,1,Dial(x) extra", "application call 'Dial(x) extra' does not end with ')'"),
        ("exten => 100,1,${APP}(x)", "bad application name '${APP}' in '${APP}(x)'"),
        ("include => ", "'include =>' needs a context name"),
        ("ignorepat =>", "'ignorepat =>' needs a dial pattern"),
        ("extension => 100,1,NoOp()", "unknown dialplan statement 'extension' in [ctx] "
         "(expected one of exten, same, include, ignorepat, switch, eswitch, lswitch)"),
    ],
)  # fmt: skip
def test_bad_lines_name_file_and_line(body: str, problem: str) -> None:
    err = error_of(f"; comment\n[ctx]\nexten => ok,1,NoOp()\n\n{body}\n")
    assert (err.filename, err.line, err.problem) == ("extensions.conf", 5, problem)


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ("same => n,NoOp()", "'same =>' needs an earlier 'exten =>' in [ctx]"),
        ("exten => 100,n,NoOp()", "priority 'n' cannot be the first priority in [ctx]"),
        ("exten => 100,s,NoOp()", "priority 's' cannot be the first priority in [ctx]"),
    ],
)
def test_first_statement_errors(body: str, problem: str) -> None:
    # 'same' and 'n' refer to the section's previous line, even if an earlier [ctx] had one.
    err = error_of(f"[ctx]\nexten => 1,1,NoOp()\n[ctx]\n{body}\n")
    assert (err.filename, err.line, err.problem) == ("extensions.conf", 4, problem)


def test_duplicate_priority_label_and_hint_are_errors() -> None:
    err = error_of("[c]\nexten => 1,1,NoOp()\nexten => 1,1,Hangup()\n")
    assert (err.line, err.problem) == (
        3, "extension '1' in [c] already has priority 1 (at extensions.conf:2)")  # fmt: skip
    err = error_of("[c]\nexten => 1,1(x),NoOp()\nexten => 1,2(x),NoOp()\n")
    assert (err.line, err.problem) == (
        3, "extension '1' in [c] already has label 'x' (at extensions.conf:2)")  # fmt: skip
    err = error_of("[c]\nexten => 1,hint,PJSIP/a\nexten => 1,hint,PJSIP/b\n")
    assert (err.line, err.problem) == (
        3, "extension '1' in [c] already has a hint (at extensions.conf:2)")  # fmt: skip


def test_same_priority_in_two_sections_of_one_context_is_an_error() -> None:
    err = error_of("[c]\nexten => 1,1,NoOp()\n[c]\nexten => 1,1,NoOp()\n")
    assert err.line == 4
