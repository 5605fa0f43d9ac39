"""DialplanRunner: stepping priorities, actions, results fed back, failure paths."""

from __future__ import annotations

import logging

import pytest

from callway.config.defaults import DEMO_EXTENSIONS_CONF
from callway.config.extensions import parse_extensions
from callway.pbx.dialplan import (
    Answer,
    Busy,
    ConfBridge,
    Congestion,
    Dial,
    DialplanRunner,
    DialResult,
    DialTarget,
    Done,
    Echo,
    Hangup,
    MusicOnHold,
    Playback,
    Progress,
    Ringing,
    Wait,
)
from callway.pbx.dialplan_model import Dialplan


def plan(text: str) -> Dialplan:
    return parse_extensions(text, "extensions.conf")


def runner(text: str, exten: str, context: str = "ctx", **kwargs: object) -> DialplanRunner:
    options: dict[str, object] = {"channel_name": "PJSIP/8005-00000001", "callerid_num": "8005"}
    options.update(kwargs)
    return DialplanRunner(plan(text), context, exten, **options)  # type: ignore[arg-type]


# --- the seed dialplan -------------------------------------------------------------------


def test_seed_8005_calls_8006() -> None:
    run = runner(DEMO_EXTENSIONS_CONF, "8006", "from-external")
    action = run.next_action()
    assert action == Dial((DialTarget("PJSIP", "8006"),), None, "")
    assert (run.context, run.exten, run.priority) == ("from-external", "8006", 2)
    run.complete(action, DialResult("ANSWER", dialed_time=12, answered_time=10))
    assert run.get_variable("DIALSTATUS") == "ANSWER"
    assert run.get_variable("ANSWEREDTIME") == "10"
    # Dial without the g option: the caller is hung up when the bridge ends
    assert run.next_action() == Hangup(16, "answered call ended")
    assert run.finished


def test_seed_unanswered_call_falls_off_the_end() -> None:
    run = runner(DEMO_EXTENSIONS_CONF, "8006", "from-external")
    run.complete(run.next_action(), DialResult("NOANSWER"))
    assert run.next_action() == Done()
    assert run.next_action() == Done()  # terminal actions repeat


def test_seed_unallocated_number() -> None:
    run = runner(DEMO_EXTENSIONS_CONF, "9999", "from-external")
    action = run.next_action()
    assert isinstance(action, Hangup) and action.cause == 1
    assert "9999" in action.reason
    assert run.finished
    assert runner(DEMO_EXTENSIONS_CONF, "8006", "no-such-context").next_action().cause == 1  # type: ignore[union-attr]


# --- DIALSTATUS flow, labels, GotoIf -------------------------------------------------------

DIAL_FLOW = """\
[ctx]
exten => _80XX,1,Dial(PJSIP/${EXTEN},20,tT)
 same => n,GotoIf($["${DIALSTATUS}" = "BUSY"]?busy)
 same => n,GotoIf($[${DIALSTATUS} = CHANUNAVAIL]?unavail:other)
 same => n(busy),Busy(5)
 same => n(unavail),Congestion()
 same => n(other),Playback(vm-nobodyavail&goodbye,noanswer)
 same => n,Hangup(USER_BUSY)
"""


def test_dialstatus_busy_jumps_to_the_busy_label() -> None:
    run = runner(DIAL_FLOW, "8006")
    dial = run.next_action()
    assert dial == Dial((DialTarget("PJSIP", "8006"),), 20.0, "tT")
    run.complete(dial, DialResult("BUSY"))
    busy = run.next_action()
    assert busy == Busy(5.0)
    assert run.priority == 4
    run.complete(busy)
    assert run.next_action() == Hangup(17, "Busy()")


def test_dialstatus_chanunavail_takes_the_first_branch() -> None:
    run = runner(DIAL_FLOW, "8006")
    run.complete(run.next_action(), DialResult("CHANUNAVAIL"))
    assert run.next_action() == Congestion(None)
    assert run.next_action() == Hangup(34, "Congestion()")


def test_dialstatus_noanswer_takes_the_else_branch() -> None:
    run = runner(DIAL_FLOW, "8006")
    run.complete(run.next_action(), DialResult("NOANSWER"))
    playback = run.next_action()
    assert playback == Playback(("vm-nobodyavail", "goodbye"), "noanswer")
    run.complete(playback, {"PLAYBACKSTATUS": "SUCCESS"})
    assert run.get_variable("PLAYBACKSTATUS") == "SUCCESS"
    assert run.next_action() == Hangup(17, "Hangup() application")


def test_caller_cancel_during_dial_stops() -> None:
    run = runner(DIAL_FLOW, "8006")
    run.complete(run.next_action(), DialResult("CANCEL"))
    assert run.finished
    assert run.next_action() == Hangup(16, "caller hung up during Dial")


def test_answered_dial_with_g_continues_after_the_callee_hangs_up() -> None:
    text = "[ctx]\nexten => 1,1,Dial(PJSIP/a&PJSIP/b@trunk,,gm(jazz))\n same => n,Echo()\n"
    run = runner(text, "1")
    dial = run.next_action()
    assert isinstance(dial, Dial)
    assert [str(target) for target in dial.targets] == ["PJSIP/a", "PJSIP/b@trunk"]
    assert (dial.targets[1].number, dial.targets[1].endpoint) == ("b", "trunk")
    assert dial.option_flags() == {"g": "", "m": "jazz"}
    run.complete(dial, DialResult("ANSWER"))
    assert run.next_action() == Echo()
    run2 = runner(text, "1")
    run2.complete(run2.next_action(), DialResult("ANSWER", caller_hung_up=True))
    assert run2.finished


def test_fallthrough_after_failed_dial_indicates_congestion() -> None:
    run = runner(DEMO_EXTENSIONS_CONF, "8006", "from-external")
    run.complete(run.next_action(), DialResult("CHANUNAVAIL"))
    assert run.next_action() == Congestion(10.0)
    assert run.next_action() == Hangup(34, "Congestion()")


def test_bad_dial_is_invalidargs_and_hangs_up(caplog: pytest.LogCaptureFixture) -> None:
    run = runner("[ctx]\nexten => 1,1,Dial(${NOWHERE})\n", "1")
    with caplog.at_level(logging.WARNING, "callway.pbx.dialplan"):
        action = run.next_action()
    assert isinstance(action, Hangup) and action.cause is None
    assert run.get_variable("DIALSTATUS") == "INVALIDARGS"
    assert "Dial" in caplog.text


# --- every action --------------------------------------------------------------------------


def test_channel_actions_in_order() -> None:
    text = """\
[ctx]
exten => s,1,Ringing()
 same => n,Progress()
 same => n,Answer(500)
 same => n,Wait(2.5)
 same => n,Wait(0)
 same => n,Playback(hello-world)
 same => n,Echo()
 same => n,MusicOnHold(default,20)
 same => n,MusicOnHold()
 same => n,ConfBridge(room1,,quiet_user)
 same => n,Busy()
"""
    run = runner(text, "s")
    got = [run.next_action() for _ in range(10)]  # each implicitly completes the last
    assert got == [
        Ringing(),
        Progress(),
        Answer(0.5),
        Wait(2.5),
        Playback(("hello-world",), ""),
        Echo(),
        MusicOnHold("default", 20.0),
        MusicOnHold("", None),
        ConfBridge("room1", "default_bridge", "quiet_user"),
        Busy(None),
    ]


@pytest.mark.parametrize(
    ("args", "cause"),
    [("", None), ("17", 17), ("USER_BUSY", 17), ("normal_clearing", 16), ("bogus", None)],
)
def test_hangup_causes(args: str, cause: int | None) -> None:
    run = runner(f"[ctx]\nexten => 1,1,Hangup({args})\n", "1")
    assert run.next_action() == Hangup(cause, "Hangup() application")


def test_complete_checks_the_action() -> None:
    run = runner(DIAL_FLOW, "8006")
    dial = run.next_action()
    with pytest.raises(ValueError, match="pending"):
        run.complete(Echo())
    with pytest.raises(ValueError, match="DIALSTATUS"):
        DialResult("MAYBE")
    run.complete(dial, DialResult("BUSY"))
    busy = run.next_action()
    with pytest.raises(ValueError, match="Dial"):
        run.complete(busy, DialResult("BUSY"))


# --- internal applications ----------------------------------------------------------------

GOTOS = """\
[ctx]
exten => 100,1,Set(TARGET=200)
 same => n,Set(COUNT=$[${COUNT} + 1])
 same => n,Goto(${TARGET},start)
exten => 200,1,NoOp(never)
 same => n(start),GotoIf($[${COUNT} < 3]?100,2)
 same => n,Goto(other,s,1)
 same => n,Verbose(1,not reached)

[other]
exten => s,1,Log(NOTICE,looping)
 same => n,MSet(A=1,B=${COUNT})
 same => n,Goto(-2)
"""


def test_set_goto_gotoif_loop_and_relative_priority() -> None:
    run = runner(GOTOS, "100", variables={"COUNT": "0"}, max_steps=100)
    action = run.next_action()
    # s,1 -> s,2 (MSet) -> s,3 Goto(-2) -> s,1 ... a loop that never yields
    assert isinstance(action, Hangup) and "100 dialplan steps" in action.reason
    assert run.get_variable("B") == "3"
    assert run.context == "other"


def test_goto_loops_are_bounded_by_default(caplog: pytest.LogCaptureFixture) -> None:
    run = runner("[ctx]\nexten => 1,1,Goto(2,1)\nexten => 2,1,Goto(1,1)\n", "1")
    with caplog.at_level(logging.ERROR, "callway.pbx.dialplan"):
        action = run.next_action()
    assert isinstance(action, Hangup) and action.cause is None
    assert "10000 dialplan steps" in action.reason
    assert "Goto loop" in caplog.text


def test_goto_to_a_missing_label_hangs_up() -> None:
    run = runner("[ctx]\nexten => 1,1,Goto(nolabel)\n same => n,Echo()\n", "1")
    action = run.next_action()
    assert isinstance(action, Hangup) and "nolabel" in action.reason


def test_goto_to_an_invalid_extension_uses_the_i_extension() -> None:
    text = "[ctx]\nexten => 1,1,Goto(555,1)\nexten => i,1,Playback(invalid)\n"
    run = runner(text, "1")
    assert run.next_action() == Playback(("invalid",), "")
    assert run.get_variable("INVALID_EXTEN") == "555"
    run2 = runner("[ctx]\nexten => 1,1,Goto(555,1)\n", "1")
    action = run2.next_action()
    assert isinstance(action, Hangup) and "invalid extension '555'" in action.reason
    run3 = runner("[ctx]\nexten => 1,1,Goto(nowhere,1,1)\n", "1")
    assert "context 'nowhere'" in run3.next_action().reason  # type: ignore[union-attr]


def test_unknown_application_hangs_up_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    run = runner("[ctx]\nexten => 1,1,NoOp()\n same => n,Dail(PJSIP/8006)\n", "1")
    with caplog.at_level(logging.WARNING, "callway.pbx.dialplan"):
        action = run.next_action()
    assert isinstance(action, Hangup) and action.cause is None
    assert "Dail" in action.reason and "extensions.conf:3" in action.reason
    assert "no application 'Dail'" in caplog.text


def test_application_names_are_case_insensitive() -> None:
    assert runner("[ctx]\nexten => 1,1,noop()\n same => n,ECHO()\n", "1").next_action() == Echo()


def test_gosub_and_return() -> None:
    text = """\
[ctx]
exten => 1,1,Set(ARG1=outer)
 same => n,Gosub(sub,s,1(hello,world))
 same => n,Playback(${GOSUB_RETVAL}-${ARG1}-${ARGC})
 same => n,Return()

[sub]
exten => s,1,Set(JOINED=${ARG1}/${ARG2}/${ARGC})
 same => n,Return(${ARG2})
"""
    run = runner(text, "1")
    assert run.next_action() == Playback(("world-outer-",), "")
    assert run.get_variable("JOINED") == "hello/world/2"
    action = run.next_action()  # Return with an empty stack fails
    assert isinstance(action, Hangup) and "Return without Gosub" in action.reason


def test_gosub_to_nowhere_fails() -> None:
    action = runner("[ctx]\nexten => 1,1,Gosub(sub,s,1)\n", "1").next_action()
    assert isinstance(action, Hangup) and "non-existent" in action.reason


def test_callerid_change_moves_to_another_handler() -> None:
    # Asterisk's documented surprise: each step is looked up with the current caller ID.
    text = """\
[ctx]
exten => s/_1XX,1,Set(CALLERID(num)=200)
 same => 2,Hangup()
exten => s/_2XX,1,Playback(one)
 same => 2,Playback(two)
"""
    run = runner(text, "s", callerid_num="100")
    assert run.next_action() == Playback(("two",), "")


def test_missing_priority_falls_through_to_a_less_specific_pattern() -> None:
    text = "[ctx]\nexten => 6410,1,NoOp()\nexten => _641X,1,Echo()\n same => n,Answer()\n"
    run = runner(text, "6410")
    assert run.next_action() == Answer()
    assert run.get_variable("EXTEN") == "6410"


def test_h_extension_runs_when_the_dialplan_ends() -> None:
    text = (
        "[ctx]\nexten => 1,1,Answer()\n same => n,Hangup()\n"
        "exten => h,1,Set(GLOBAL(ENDED)=${EXTEN})\n same => n,Playback(skipped)\n"
        " same => n,Set(GLOBAL(NEVER)=1)\n"
    )
    shared: dict[str, str] = {}
    run = runner(text, "1", global_vars=shared)
    assert run.next_action() == Answer()
    assert run.next_action() == Hangup(None, "Hangup() application")
    assert shared == {"ENDED": "h"}


def test_caller_hangup_stops_and_runs_h() -> None:
    text = "[ctx]\nexten => 1,1,Echo()\nexten => h,1,Set(GLOBAL(BYE)=${CALLERID(num)})\n"
    shared: dict[str, str] = {}
    run = runner(text, "1", global_vars=shared)
    assert run.next_action() == Echo()
    run.caller_hangup()
    assert run.finished and shared == {"BYE": "8005"}
    assert run.next_action() == Hangup(16, "caller hung up")


def test_variables_given_and_set() -> None:
    run = runner(
        "[globals]\nG=global\n[ctx]\nexten => 1,1,Playback(${V}&${G}&${CALLERID(name)})\n",
        "1",
        variables={"V": "given"},
        callerid_name="Alice",
    )
    run.set_variable("G", "shadowed")
    assert run.next_action() == Playback(("given", "shadowed", "Alice"), "")


def test_log_lines_name_the_step(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, "callway.verbose"):  # Asterisk's verbose lines
        runner(DEMO_EXTENSIONS_CONF, "8006", "from-external").next_action()
    assert 'Executing [8006@from-external:1] NoOp("PJSIP/8005-00000001", "")' in caplog.text
    assert 'Executing [8006@from-external:2] Dial("PJSIP/8005-00000001", "PJSIP/8006")' in (
        caplog.text
    )


def test_relative_goto_counts_from_the_current_priority() -> None:
    text = "[ctx]\nexten => 1,1,Goto(+2)\n same => n,Echo()\n same => n,Ringing()\n"
    assert runner(text, "1").next_action() == Ringing()
    action = runner("[ctx]\nexten => 1,1,Goto(-1)\n", "1").next_action()
    assert isinstance(action, Hangup) and "must be a number > 0" in action.reason


def test_goto_a_label_of_another_extension_and_context() -> None:
    text = (
        "[ctx]\nexten => 1,1,Goto(other,9123,dial)\n"
        "[other]\nexten => _9X.,1,NoOp()\n same => n(dial),Dial(PJSIP/${EXTEN:1})\n"
    )
    run = runner(text, "1")
    assert run.next_action() == Dial((DialTarget("PJSIP", "123"),))
    assert (run.context, run.exten, run.priority) == ("other", "9123", 2)
