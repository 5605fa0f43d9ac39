"""Destination selection: every Kamailio algorithm number callway implements."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callway.balancer.algorithms import (
    SUPPORTED_ALGORITHMS,
    CallLoad,
    RequestFacts,
    SelectorState,
    select_destinations,
)
from callway.balancer.model import (
    Algorithm,
    Destination,
    DestState,
    DispatcherSet,
    UnsupportedAlgorithmError,
)
from callway.config.dispatcher import parse_dispatcher_list

NODES = ["sip:10.0.0.1", "sip:10.0.0.2", "sip:10.0.0.3"]


def make_set(*lines: str, setid: int = 1) -> DispatcherSet:
    text = "\n".join(f"{setid} {line}" for line in lines)
    return parse_dispatcher_list(text)[setid]


def down(*uris: str, state: DestState = DestState.INACTIVE) -> SelectorState:
    """A selector whose live flags mark ``uris`` with ``state``."""

    def flags_of(setid: int, dest: Destination) -> DestState:
        return state if dest.uri in uris else dest.flags

    return SelectorState(flags_of=flags_of)


def pick(
    dset: DispatcherSet,
    alg: Algorithm | int,
    state: SelectorState | None = None,
    facts: RequestFacts | None = None,
    rng: random.Random | None = None,
) -> list[str]:
    chosen = select_destinations(
        dset,
        alg,
        facts or RequestFacts(),
        state if state is not None else SelectorState(),
        now=1000.0,
        rng=rng or random.Random(7),
    )
    return [d.uri for d in chosen]


def share(dset: DispatcherSet, alg: Algorithm, n: int, state: SelectorState) -> Counter[str]:
    rng = random.Random(1)
    return Counter(pick(dset, alg, state, rng=rng)[0] for _ in range(n))


# -- weight (9) --------------------------------------------------------------


@pytest.mark.parametrize(("w1", "w2"), [(50, 50), (80, 20), (1, 99)])
def test_weight_split_matches_weights(w1: int, w2: int) -> None:
    dset = make_set(f"sip:10.0.0.1 0 1 weight={w1}", f"sip:10.0.0.2 0 1 weight={w2}")
    counts = share(dset, Algorithm.WEIGHT, 10_000, SelectorState())
    assert abs(counts["sip:10.0.0.1"] / 10_000 - w1 / 100) <= 0.02
    assert abs(counts["sip:10.0.0.2"] / 10_000 - w2 / 100) <= 0.02


def test_weight_is_exact_over_every_hundred() -> None:
    dset = make_set("sip:10.0.0.1 0 0 weight=80", "sip:10.0.0.2 0 0 weight=20")
    state = SelectorState()
    for _ in range(5):
        counts = share(dset, Algorithm.WEIGHT, 100, state)
        assert counts == {"sip:10.0.0.1": 80, "sip:10.0.0.2": 20}


def test_weight_table_is_shuffled() -> None:
    dset = make_set("sip:10.0.0.1 0 0 weight=50", "sip:10.0.0.2 0 0 weight=50")
    state = SelectorState()
    first_ten = [pick(dset, 9, state)[0] for _ in range(10)]
    assert len(set(first_ten)) == 2


def test_weight_remainder_goes_to_last_and_excess_is_cut() -> None:
    under = make_set("sip:10.0.0.1 0 0 weight=30", "sip:10.0.0.2 0 0 weight=10")
    assert share(under, Algorithm.WEIGHT, 100, SelectorState())["sip:10.0.0.2"] == 70
    over = make_set("sip:10.0.0.1 0 0 weight=90", "sip:10.0.0.2 0 0 weight=90")
    assert share(over, Algorithm.WEIGHT, 100, SelectorState())["sip:10.0.0.2"] == 10


def test_weight_unset_on_first_destination_means_always_first() -> None:
    dset = make_set("sip:10.0.0.1", "sip:10.0.0.2 0 0 weight=90")
    assert share(dset, Algorithm.WEIGHT, 200, SelectorState()) == {"sip:10.0.0.1": 200}


def test_weight_skips_an_inactive_node_and_lists_failover() -> None:
    dset = make_set("sip:10.0.0.1 0 1 weight=50", "sip:10.0.0.2 0 1 weight=50")
    state = down("sip:10.0.0.1")
    assert share(dset, Algorithm.WEIGHT, 100, state) == {"sip:10.0.0.2": 100}
    healthy = SelectorState()
    for _ in range(10):
        chosen = pick(dset, 9, healthy)
        assert sorted(chosen) == ["sip:10.0.0.1", "sip:10.0.0.2"]


# -- relative weight (11) ----------------------------------------------------


def test_relative_weight_renormalises_over_active_nodes() -> None:
    dset = make_set(*(f"{uri} 0 0 rweight={w}" for uri, w in zip(NODES, (1, 2, 1), strict=True)))
    counts = share(dset, Algorithm.RELATIVE_WEIGHT, 10_000, SelectorState())
    assert [counts[u] / 10_000 for u in NODES] == pytest.approx([0.25, 0.5, 0.25], abs=0.02)
    state = down(NODES[2])
    counts = share(dset, Algorithm.RELATIVE_WEIGHT, 10_000, state)
    assert counts[NODES[2]] == 0
    assert counts[NODES[0]] / 10_000 == pytest.approx(1 / 3, abs=0.02)
    assert counts[NODES[1]] / 10_000 == pytest.approx(2 / 3, abs=0.02)


def test_relative_weight_without_rweights_takes_first_usable() -> None:
    dset = make_set(*NODES)
    assert pick(dset, 11, down(NODES[0]))[0] == NODES[1]


# -- hashes (0, 1, 2, 3, 5, 7) ----------------------------------------------


def test_call_id_hash_is_stable_and_spreads() -> None:
    dset = make_set(*NODES)
    seen = Counter()
    for n in range(300):
        facts = RequestFacts(call_id=f"call-{n}@host")
        first = pick(dset, 0, facts=facts, rng=random.Random(n))
        assert first == pick(dset, 0, facts=facts, rng=random.Random(n + 1))
        seen[first[0]] += 1
    assert set(seen) == set(NODES)
    assert min(seen.values()) > 60


@given(call_id=st.text(min_size=1, max_size=40), dead=st.sampled_from(NODES))
def test_call_id_rehash_moves_only_the_dead_nodes_calls(call_id: str, dead: str) -> None:
    dset = make_set(*NODES)
    facts = RequestFacts(call_id=call_id)
    healthy = pick(dset, Algorithm.HASH_CALLID, facts=facts)
    degraded = pick(dset, Algorithm.HASH_CALLID, state=down(dead), facts=facts)
    assert dead not in degraded
    assert len(degraded) == 2
    if healthy[0] != dead:
        assert degraded[0] == healthy[0]


def test_rehash_spreads_a_dead_nodes_calls() -> None:
    dset = make_set(*NODES, "sip:10.0.0.4")
    state = down(NODES[0])
    moved = Counter()
    for n in range(2000):
        facts = RequestFacts(call_id=f"c{n}")
        if pick(dset, 0, facts=facts)[0] == NODES[0]:
            moved[pick(dset, 0, state=state, facts=facts)[0]] += 1
    assert len(moved) == 3
    assert min(moved.values()) > sum(moved.values()) / 6


def test_uri_hashes_ignore_tags_params_and_default_port() -> None:
    dset = make_set(*NODES, "sip:10.0.0.4", "sip:10.0.0.5")
    for alg, name in ((1, "from_uri"), (2, "to_uri")):
        results = {
            pick(dset, alg, facts=RequestFacts(**{name: uri}))[0]
            for uri in ("sip:alice@example.com", "sip:alice@EXAMPLE.com:5060;user=phone")
        }
        assert len(results) == 1
    users = {pick(dset, 1, facts=RequestFacts(from_uri=f"sip:u{n}@x"))[0] for n in range(50)}
    assert len(users) > 1


def test_ruri_and_pv_hash() -> None:
    dset = make_set(*NODES)
    a = pick(dset, 3, facts=RequestFacts(ruri_user="8005"))
    assert a == pick(dset, 3, facts=RequestFacts(ruri_user="8005", call_id="other"))
    assert pick(dset, 7, facts=RequestFacts(hash_key="k1")) == pick(
        dset, 7, facts=RequestFacts(hash_key="k1")
    )
    with pytest.raises(UnsupportedAlgorithmError, match="hash_key"):
        pick(dset, 7)


def test_auth_user_hash_falls_back_to_round_robin() -> None:
    dset = make_set(*NODES)
    assert pick(dset, 5, facts=RequestFacts(auth_user="8005")) == pick(
        dset, 5, facts=RequestFacts(auth_user="8005")
    )
    state = SelectorState()
    firsts = [pick(dset, 5, state)[0] for _ in range(3)]
    assert firsts == NODES


# -- round robin (4), random (6), priority (8) -------------------------------


def test_round_robin_cycles_per_set_and_skips_inactive() -> None:
    one, two = make_set(*NODES), make_set(*NODES[:2], setid=2)
    state = SelectorState()
    assert [pick(one, 4, state)[0] for _ in range(4)] == [*NODES, NODES[0]]
    assert [pick(two, 4, state)[0] for _ in range(3)] == [NODES[0], NODES[1], NODES[0]]
    assert pick(one, 4, state) == [NODES[1], NODES[2], NODES[0]]
    state = down(NODES[1])
    assert [pick(one, 4, state)[0] for _ in range(4)] == [NODES[0], NODES[2], NODES[0], NODES[2]]


def test_random_uses_rng_and_only_usable_nodes() -> None:
    dset = make_set(*NODES)
    rng = random.Random(3)
    counts = Counter(pick(dset, 6, down(NODES[0]), rng=rng)[0] for _ in range(1000))
    assert set(counts) == set(NODES[1:])
    assert min(counts.values()) > 400
    assert pick(dset, 6, rng=random.Random(5)) == pick(dset, 6, rng=random.Random(5))


def test_priority_serial_order() -> None:
    dset = make_set("sip:10.0.0.1 0 1", "sip:10.0.0.2 0 10", "sip:10.0.0.3 0 5")
    assert pick(dset, 8) == ["sip:10.0.0.2", "sip:10.0.0.3", "sip:10.0.0.1"]
    trying = down("sip:10.0.0.2", state=DestState.TRYING)
    assert pick(dset, 8, trying)[0] == "sip:10.0.0.2"
    disabled = down("sip:10.0.0.2", state=DestState.DISABLED)
    assert pick(dset, 8, disabled) == ["sip:10.0.0.3", "sip:10.0.0.1"]


# -- call load (10) ----------------------------------------------------------


def test_call_load_picks_least_loaded_and_respects_maxload() -> None:
    dset = make_set("sip:10.0.0.1 0 0 duid=a;maxload=2", "sip:10.0.0.2 0 0 duid=b;maxload=1")
    load = CallLoad()
    state = SelectorState(call_load=load)
    assert pick(dset, 10, state) == ["sip:10.0.0.1", "sip:10.0.0.2"]
    load.call_started("a", "c1")
    assert pick(dset, 10, state) == ["sip:10.0.0.2", "sip:10.0.0.1"]
    load.call_started("b", "c2")
    assert pick(dset, 10, state) == ["sip:10.0.0.1"]  # b is at its maxload
    load.call_started("a", "c3")
    assert pick(dset, 10, state) == []
    assert load.call_ended("c2")
    assert not load.call_ended("c2")
    assert pick(dset, 10, state) == ["sip:10.0.0.2"]
    assert (load.load("a"), load.load("b"), len(load)) == (2, 0, 2)


def test_call_load_moves_a_failed_over_call_and_expires() -> None:
    load = CallLoad(expire=60.0)
    load.call_started("a", "c1", now=100.0)
    load.call_started("b", "c1", now=101.0)
    assert (load.load("a"), load.load("b"), load.destination_of("c1")) == (0, 1, "b")
    load.call_started("a", "c2")  # no now: never expires
    assert load.get_timer() == 161.0
    assert load.handle_timer(160.0) == []
    assert load.handle_timer(161.0) == ["c1"]
    assert load.get_timer() is None
    assert (load.load("a"), load.load("b")) == (1, 0)


def test_call_load_without_duid_counts_by_uri() -> None:
    dset = make_set(*NODES[:2])
    state = SelectorState()
    state.call_load.call_started(NODES[0], "c1")
    assert pick(dset, 10, state)[0] == NODES[1]


# -- common rules ------------------------------------------------------------


@pytest.mark.parametrize("alg", sorted(SUPPORTED_ALGORITHMS - {Algorithm.HASH_PV}))
def test_no_usable_destination_gives_empty_list(alg: Algorithm) -> None:
    dset = make_set(*NODES)
    state = down(*NODES)
    assert pick(dset, alg, state) == []


@pytest.mark.parametrize("alg", sorted(SUPPORTED_ALGORITHMS - {Algorithm.HASH_PV}))
def test_failover_lists_every_usable_node_once(alg: Algorithm) -> None:
    dset = make_set(*NODES, "sip:10.0.0.4")
    state = down("sip:10.0.0.4", state=DestState.DISABLED)
    chosen = pick(dset, alg, state, facts=RequestFacts(call_id="x", auth_user="u"))
    assert sorted(chosen) == NODES


def test_unsupported_and_unknown_algorithms() -> None:
    dset = make_set(*NODES)
    for alg in (12, 13):
        with pytest.raises(UnsupportedAlgorithmError):
            pick(dset, alg)
    with pytest.raises(ValueError, match="unknown dispatcher algorithm"):
        pick(dset, 99)


def test_algorithm_parse() -> None:
    assert Algorithm.parse("9") is Algorithm.WEIGHT
    assert Algorithm.parse(4) is Algorithm.ROUND_ROBIN
    assert Algorithm.parse("relative-weight") is Algorithm.RELATIVE_WEIGHT
    with pytest.raises(ValueError):
        Algorithm.parse("fastest")
    assert int(Algorithm.CALL_LOAD) == 10
