"""The keepalive prober: Kamailio's states, thresholds, probing modes and events."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callway.balancer.algorithms import RequestFacts, SelectorState, select_destinations
from callway.balancer.model import DestState, ProbeSettings, ProbingMode, ReplyCodes
from callway.balancer.probing import (
    DestinationDown,
    DestinationUp,
    Prober,
    ProberEvent,
    next_state,
)
from callway.config.dispatcher import parse_dispatcher_list
from tests.helpers.clock import ManualClock

A, B = "sip:10.0.0.1", "sip:10.0.0.2"
SEED = f"1 {A} 0 1 weight=50\n1 {B} 0 1 weight=50\n"


def prober(text: str = SEED, **settings: object) -> Prober:
    params: dict[str, object] = {"interval": 10.0, "probing_mode": ProbingMode.ALL}
    params.update(settings)
    return Prober(parse_dispatcher_list(text), ProbeSettings(**params))  # type: ignore[arg-type]


def letters(p: Prober) -> dict[str, str]:
    return {s.uri: s.letters for s in p.states()}


def run_round(p: Prober, clock: ManualClock) -> list[str]:
    """Run the next probing round (probes still out by then time out) and return its URIs."""
    timer = p.get_timer()
    assert timer is not None
    if timer > clock.now:  # not the very first round
        clock.advance(p.settings.interval)
    p.handle_timer(clock.now)
    return [d.uri for d in p.probes_to_send()]


def events(p: Prober) -> list[ProberEvent]:
    out = []
    while (event := p.next_event()) is not None:
        out.append(event)
    return out


# -- state letters and reply codes -------------------------------------------


@pytest.mark.parametrize(
    ("flags", "text"),
    [
        (DestState.ACTIVE, "AX"),
        (DestState.PROBING, "AP"),
        (DestState.INACTIVE | DestState.PROBING, "IP"),
        (DestState.TRYING, "TX"),
        (DestState.DISABLED, "DX"),
        (DestState.INACTIVE | DestState.DISABLED, "IX"),
        (DestState.NOPING, "AN"),
    ],
)
def test_state_letters(flags: DestState, text: str) -> None:
    assert flags.state_letters() == text


@pytest.mark.parametrize("text", ["AX", "AP", "IP", "IX", "TX", "TP", "DX", "AN"])
def test_letters_read_back(text: str) -> None:
    assert DestState.from_letters(text).state_letters() == text
    assert DestState.from_letters(text.lower()).state_letters() == text


def test_from_letters_kamailio_forms_and_errors() -> None:
    assert DestState.from_letters("dp") == DestState.DISABLED  # disabled never probes
    assert DestState.from_letters("0p") == DestState.INACTIVE | DestState.PROBING
    assert DestState.from_letters("1") == DestState.ACTIVE
    for bad in ("", "zz", "aq", "apx"):
        with pytest.raises(ValueError):
            DestState.from_letters(bad)


def test_reply_codes() -> None:
    default = ReplyCodes()
    assert default.accepts(200) and default.accepts(202)
    assert not default.accepts(404) and not default.accepts(408)
    codes = ReplyCodes.parse("class=2;code=403;code=488;class=3")
    assert codes.accepts(403) and codes.accepts(302) and not codes.accepts(404)
    assert ReplyCodes.parse("") == ReplyCodes()
    for bad in ("code=99", "class=7", "code=abc", "kind=2"):
        with pytest.raises(ValueError):
            ReplyCodes.parse(bad)


def test_settings_validation() -> None:
    with pytest.raises(ValueError):
        ProbeSettings(probing_threshold=0)
    with pytest.raises(ValueError):
        ProbeSettings(interval=-1)
    with pytest.raises(ValueError):
        ProbeSettings(timeout=0)
    assert ProbeSettings(probing_mode=1).probing_mode is ProbingMode.ALL  # type: ignore[arg-type]


# -- the probing cycle ---------------------------------------------------------


def test_mode_all_probes_everyone_and_takes_a_dead_node_down() -> None:
    clock = ManualClock()
    p = prober()
    assert run_round(p, clock) == [A, B]
    assert p.get_timer() == clock.now + 5.0  # the probe timeout comes first
    assert p.on_reply(A, 200, clock.now)
    assert p.on_reply(B, 503, clock.now)
    assert letters(p) == {A: "AP", B: "IP"}
    (event,) = events(p)
    assert isinstance(event, DestinationDown)
    assert (event.setid, event.uri, event.cause) == (1, B, "probe reply 503")
    assert event.new.state_letters() == "IP"
    assert p.get_timer() == clock.now + 10.0
    assert run_round(p, clock) == [A, B]
    p.on_reply(B, 200, clock.now)
    (event,) = events(p)
    assert isinstance(event, DestinationUp)
    assert letters(p)[B] == "AP"


def test_probe_timeout_counts_as_failure_and_late_reply_is_ignored() -> None:
    clock = ManualClock()
    p = prober()
    run_round(p, clock)
    p.on_reply(A, 200, clock.now)
    clock.advance(4.9)
    p.handle_timer(clock.now)
    assert letters(p)[B] == "AX"
    clock.advance(0.1)
    assert p.get_timer() == clock.now
    p.handle_timer(clock.now)
    assert letters(p)[B] == "IP"
    assert [e.cause for e in events(p)] == ["probe timeout"]
    assert not p.on_reply(B, 200, clock.now)
    assert not p.on_timeout(B, clock.now)
    assert not p.on_reply(A, 100, clock.now)


def test_shell_reported_timeout() -> None:
    clock = ManualClock()
    p = prober()
    run_round(p, clock)
    assert p.on_timeout(A, clock.now)
    assert letters(p)[A] == "IP"


def test_probing_threshold_goes_through_trying() -> None:
    clock = ManualClock()
    p = prober(probing_threshold=3)
    seen = []
    for _ in range(3):
        run_round(p, clock)
        p.on_reply(A, 500, clock.now)
        p.on_reply(B, 200, clock.now)
        seen.append(letters(p)[A])
    assert seen == ["TP", "TP", "IP"]
    assert [type(e) for e in events(p)] == [DestinationDown]


def test_inactive_threshold_needs_consecutive_successes() -> None:
    clock = ManualClock()
    p = prober(inactive_threshold=2)
    run_round(p, clock)
    p.on_reply(A, 500, clock.now)
    assert letters(p)[A] == "IP"
    results = []
    for status in (200, 500, 200, 200):
        assert A in run_round(p, clock)
        p.on_reply(A, status, clock.now)
        results.append(letters(p)[A])
    assert results == ["IP", "IP", "IP", "AP"]
    assert [type(e) for e in events(p) if e.uri == A] == [DestinationDown, DestinationUp]


def test_accepted_reply_codes() -> None:
    clock = ManualClock()
    p = prober(reply_codes=ReplyCodes.parse("code=404;code=408"))
    run_round(p, clock)
    p.on_reply(A, 404, clock.now)
    clock.advance(5.0)
    p.handle_timer(clock.now)  # B times out: a local 408, which is accepted
    assert letters(p) == {A: "AP", B: "AP"}


def test_no_second_probe_while_one_is_pending() -> None:
    clock = ManualClock()
    p = prober(interval=2.0, timeout=5.0)
    assert run_round(p, clock) == [A, B]
    p.on_reply(A, 200, clock.now)
    assert run_round(p, clock) == [A]
    assert [s.probe_pending for s in p.states()] == [True, True]


def test_interval_zero_and_ping_inactive_send_nothing() -> None:
    clock = ManualClock()
    off = prober(interval=0.0)
    assert off.get_timer() is None
    off.handle_timer(clock.now)
    assert off.probes_to_send() == []
    paused = prober()
    paused.ping_active = False
    assert paused.get_timer() is None
    paused.handle_timer(clock.now)
    assert paused.probes_to_send() == []


def test_rounds_do_not_drift() -> None:
    p = prober(text=f"1 {A}")
    p.handle_timer(1000.0)
    p.on_reply(A, 200, 1000.0)
    p.handle_timer(1010.5)
    p.on_reply(A, 200, 1010.5)
    assert p.get_timer() == 1020.0
    p.handle_timer(1100.0)  # long stall: the schedule restarts from now
    p.on_reply(A, 200, 1100.0)
    assert p.get_timer() == 1110.0


# -- probing modes ---------------------------------------------------------------


def test_mode_0_probes_flagged_once() -> None:
    clock = ManualClock()
    p = prober(text=f"1 {A} 8\n1 {B} 0\n", probing_mode=ProbingMode.FLAGGED_ONCE)
    assert run_round(p, clock) == [A]
    p.on_reply(A, 200, clock.now)
    assert letters(p)[A] == "AX"  # the probing flag is cleared
    assert run_round(p, clock) == []
    assert p.on_request_failure(B, clock.now)
    assert letters(p)[B] == "IP"
    assert run_round(p, clock) == [B]
    p.on_reply(B, 500, clock.now)
    assert letters(p)[B] == "IX"  # Kamailio: probed once, stays down
    assert run_round(p, clock) == []


def test_mode_2_probes_only_inactive_probing() -> None:
    clock = ManualClock()
    p = prober(text=f"1 {A} 8\n1 {B} 9\n", probing_mode=ProbingMode.INACTIVE)
    assert run_round(p, clock) == [B]
    p.on_reply(B, 200, clock.now)
    assert letters(p) == {A: "AP", B: "AX"}
    assert run_round(p, clock) == []


def test_mode_3_keeps_the_probing_flag() -> None:
    clock = ManualClock()
    p = prober(text=f"1 {A} 8\n1 {B} 0\n", probing_mode=ProbingMode.FLAGGED)
    assert run_round(p, clock) == [A]
    p.on_reply(A, 500, clock.now)
    assert letters(p)[A] == "IP"
    assert run_round(p, clock) == [A]
    p.on_reply(A, 200, clock.now)
    assert letters(p)[A] == "AP"
    run_round(p, clock)
    p.set_state(A, "AX", clock.now)  # probing switched off while the probe is out
    p.on_reply(A, 500, clock.now)
    assert letters(p)[A] == "AX"


def test_noping_destinations_are_never_probed() -> None:
    clock = ManualClock()
    p = prober(text=f"1 {A} 32\n1 {B}\n")
    assert run_round(p, clock) == [B]
    p.on_request_failure(A, clock.now)
    assert letters(p)[A] == "IP"
    assert run_round(p, clock) == [B]


# -- failures of relayed requests, operators, sets --------------------------------


def test_request_failure_marks_then_probe_decides() -> None:
    clock = ManualClock()
    p = prober(probing_threshold=2)
    assert p.on_request_failure(A, clock.now)
    assert letters(p)[A] == "TP"
    assert p.on_request_failure(A, clock.now)
    assert letters(p)[A] == "IP"
    assert [e.cause for e in events(p)] == ["request failure"]
    run_round(p, clock)
    p.on_reply(A, 200, clock.now)
    assert letters(p)[A] == "AP"
    assert not p.on_request_failure("sip:10.9.9.9", clock.now)
    assert {s.uri: s.request_failures for s in p.states()} == {A: 2, B: 0}


def test_operator_drain_and_return() -> None:
    clock = ManualClock()
    p = prober()
    assert p.set_state(B, "dx", clock.now) == 1
    (event,) = events(p)
    assert isinstance(event, DestinationDown) and event.cause == "operator"
    assert run_round(p, clock) == [A]
    p.on_request_failure(B, clock.now)
    assert letters(p)[B] == "DX"
    p.set_state(B, "AP", clock.now)
    assert isinstance(p.next_event(), DestinationUp)
    assert p.state_of(B) == DestState.PROBING


def test_drain_while_probe_is_out_wins() -> None:
    clock = ManualClock()
    p = prober()
    run_round(p, clock)
    p.set_state(A, "DX", clock.now)
    p.on_reply(A, 200, clock.now)
    assert letters(p)[A] == "DX"


def test_set_state_all_and_errors() -> None:
    p = prober()
    assert p.set_state("all", "ip", 1.0) == 2
    assert set(letters(p).values()) == {"IP"}
    with pytest.raises(KeyError):
        p.set_state("sip:10.9.9.9", "ax", 1.0)
    with pytest.raises(KeyError):
        p.set_state(A, "ax", 1.0, setid=2)
    with pytest.raises(ValueError):
        p.set_state(A, "q", 1.0)


def test_same_uri_in_two_sets_is_probed_once() -> None:
    clock = ManualClock()
    p = prober(text=f"1 {A}\n2 {A}\n2 {B}\n")
    assert run_round(p, clock) == [A, B]
    p.on_reply(A, 500, clock.now)
    assert [(s.setid, s.uri, s.letters) for s in p.states()][:2] == [(1, A, "IP"), (2, A, "IP")]
    assert len(events(p)) == 2


def test_reload_keeps_live_state() -> None:
    clock = ManualClock()
    p = prober()
    run_round(p, clock)
    p.on_reply(A, 500, clock.now)
    p.reload(parse_dispatcher_list(f"1 {A} 0 5\n1 sip:10.0.0.3\n"))
    assert letters(p) == {A: "IP", "sip:10.0.0.3": "AX"}
    assert not p.on_reply(B, 200, clock.now)  # B's pending probe was dropped
    p.reload(parse_dispatcher_list(f"1 {A} 4\n"))
    assert letters(p) == {A: "DX"}  # flags changed in the file: the file wins


def test_states_snapshot_counters() -> None:
    clock = ManualClock(start=50.0)
    p = prober()
    run_round(p, clock)
    p.on_reply(A, 200, clock.now)
    p.on_reply(B, 486, clock.now)
    a, b = p.states()
    assert (a.probes_sent, a.probes_ok, a.probes_failed, a.last_status) == (1, 1, 0, 200)
    assert (b.probes_failed, b.last_status, b.last_change, b.usable) == (1, 486, 50.0, False)
    assert a.priority == 1


def test_selection_follows_prober_states() -> None:
    clock = ManualClock()
    p = prober()
    state = SelectorState(flags_of=p.flags_of)
    dset = p.sets[1]
    rng = random.Random(1)

    def chosen() -> list[str]:
        return [d.uri for d in select_destinations(dset, 9, RequestFacts(), state, 0.0, rng)]

    run_round(p, clock)
    p.on_reply(A, 200, clock.now)
    p.on_reply(B, 200, clock.now)
    assert {chosen()[0] for _ in range(20)} == {A, B}
    run_round(p, clock)
    p.on_timeout(A, clock.now)
    p.on_timeout(B, clock.now)
    assert chosen() == []  # all nodes down: 404 No destination


# -- the transition function -------------------------------------------------------

_FLAGS = st.builds(DestState, st.integers(0, 63))


@given(
    old=_FLAGS,
    count=st.integers(0, 5),
    requested=st.sampled_from(
        [
            DestState.ACTIVE,
            DestState.PROBING,
            DestState.TRYING,
            DestState.TRYING | DestState.PROBING,
            DestState.INACTIVE | DestState.PROBING,
            DestState.DISABLED,
        ]
    ),
    probing=st.integers(1, 4),
    inactive=st.integers(1, 4),
)
def test_next_state_invariants(
    old: DestState, count: int, requested: DestState, probing: int, inactive: int
) -> None:
    settings = ProbeSettings(probing_threshold=probing, inactive_threshold=inactive)
    new, new_count = next_state(old, count, requested, settings)
    assert not (new & DestState.TRYING and new & DestState.INACTIVE)
    assert new & (DestState.NOPING | DestState.NODNSARES) == old & (
        DestState.NOPING | DestState.NODNSARES
    )
    if requested & DestState.DISABLED:
        assert new & ~(DestState.NOPING | DestState.NODNSARES) == DestState.DISABLED
    if requested & DestState.TRYING:
        assert not new.usable or new & DestState.TRYING
        assert new_count < probing
    if not requested & DestState.TRYING and new & DestState.INACTIVE and old.usable:
        assert requested & DestState.INACTIVE
    if new & DestState.INACTIVE and not requested & (DestState.INACTIVE | DestState.TRYING):
        assert 0 < new_count < inactive  # still counting successes


@given(failures=st.integers(1, 6), threshold=st.integers(1, 6))
def test_failures_reach_inactive_exactly_at_threshold(failures: int, threshold: int) -> None:
    settings = ProbeSettings(probing_threshold=threshold)
    flags, count = DestState.ACTIVE, 0
    for _ in range(failures):
        flags, count = next_state(flags, count, DestState.TRYING | DestState.PROBING, settings)
    assert (not flags.usable) == (failures >= threshold)
