"""validate_dialplan: problems found before any call, each with file and line."""

from __future__ import annotations

from callway.config.defaults import DEMO_EXTENSIONS_CONF
from callway.config.extensions import parse_extensions
from callway.pbx.dialplan import DialplanProblem, validate_dialplan
from callway.pbx.dialplan_model import Context, Dialplan, Priority


def problems(text: str, **kwargs: frozenset[str]) -> list[str]:
    return [str(p) for p in validate_dialplan(parse_extensions(text, "ext.conf"), **kwargs)]


def test_the_seed_dialplan_is_clean() -> None:
    assert validate_dialplan(parse_extensions(DEMO_EXTENSIONS_CONF, "extensions.conf")) == []


def test_unknown_application_names_file_and_line() -> None:
    found = validate_dialplan(
        parse_extensions("[ctx]\nexten => 1,1,NoOp()\n same => n,Dail(PJSIP/1)\n", "ext.conf")
    )
    assert found == [DialplanProblem("ext.conf", 3, "[ctx] 1,2: unknown application 'Dail'")]
    assert str(found[0]) == "ext.conf:3: [ctx] 1,2: unknown application 'Dail'"


def test_dial_targets() -> None:
    text = """\
[ctx]
exten => 1,1,Dial(PJSIP/8006&PJSIP/${EXTEN}&${ANYTHING})
exten => 2,1,Dial(8006)
exten => 3,1,Dial(SIP/8006)
exten => 4,1,Dial()
exten => 5,1,Dial(PJSIP/)
exten => 6,1,Dial(PJSIP/8006,soon)
exten => 7,1,Dial(pjsip/8006@trunk,30,tT)
exten => 8,1,Dial(SI P/${EXTEN})
"""
    assert problems(text) == [
        "ext.conf:3: [ctx] 2,1: bad dial target '8006' (expected Tech/resource)",
        "ext.conf:4: [ctx] 3,1: unknown channel technology 'SIP' (available: PJSIP)",
        "ext.conf:5: [ctx] 4,1: Dial requires a target (Tech/resource)",
        "ext.conf:6: [ctx] 5,1: bad dial target 'PJSIP/' (expected Tech/resource)",
        "ext.conf:7: [ctx] 6,1: Dial timeout 'soon' is not a positive number",
        "ext.conf:9: [ctx] 8,1: bad dial target 'SI P/${EXTEN}' (expected Tech/resource)",
    ]
    assert problems("[ctx]\nexten => 3,1,Dial(SIP/8006)\n", technologies=frozenset({"SIP"})) == []


def test_goto_destinations() -> None:
    text = """\
[ctx]
exten => 1,1,Goto(done)
 same => n(done),Goto(other,s,start)
 same => n,Goto(missing)
 same => n,Goto(nowhere,s,1)
 same => n,GotoIf($[${X} = 1]?done:other,s,nolabel)
 same => n,GotoIf(${IF(${X}?a:b)}?done)
 same => n,Goto(${DEST})
 same => n,Goto(a,b,c,d)
 same => n,Gosub(other,s,start(1,2))
 same => n,GotoIf(no-question-mark)

[other]
exten => s,1(start),Return()
"""
    assert problems(text) == [
        "ext.conf:4: [ctx] 1,3: label 'missing' does not exist in extension '1'",
        "ext.conf:5: [ctx] 1,4: destination context 'nowhere' does not exist",
        "ext.conf:6: [ctx] 1,5: label 'nolabel' does not exist for s@other",
        "ext.conf:9: [ctx] 1,8: expected [[context,]extension,]priority, got 'a,b,c,d'",
        "ext.conf:11: [ctx] 1,10: GotoIf needs 'condition?destination[:destination]'",
    ]


def test_set_and_patterns() -> None:
    text = "[ctx]\nexten => 1,1,Set(NOEQUALS)\n same => n,Set(CALLERID(num)=1)\n"
    assert problems(text) == ["ext.conf:2: [ctx] 1,1: Set needs name=value, got 'NOEQUALS'"]
    # the parser rejects most broken sets itself; a Dialplan built in code may still hold one
    step = Priority(1, "", "NoOp", "", "gen.conf", 7)
    built = Dialplan({"ctx": Context("ctx", {"_8[0-5": (step,), "1/_[2": (step,)})})
    assert [str(p) for p in validate_dialplan(built)] == [
        "gen.conf:7: [ctx] _8[0-5,1: pattern '_8[0-5' has an unclosed '['",
        "gen.conf:7: [ctx] 1/_[2,1: pattern '_[2' has an unclosed '['",
    ]
