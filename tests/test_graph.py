"""Tests for ``wf_engine.core.graph``: components, cycles and topological order as plain data."""

from __future__ import annotations

import itertools
import random

import pytest

from wf_engine.core.graph import (
    GraphCycle,
    cycle_through,
    find_cycles,
    strongly_connected,
    topological_order,
)

Graph = list[list[int]]


def _is_cycle(cycle: tuple[int, ...], edges: Graph) -> bool:
    return len(set(cycle)) == len(cycle) and all(
        b in edges[a] for a, b in zip(cycle, [*cycle[1:], cycle[0]], strict=True)
    )


def _reaches(edges: Graph, start: int) -> set[int]:
    seen, todo = {start}, [start]
    while todo:
        for target in edges[todo.pop()]:
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


# --- strongly_connected ------------------------------------------------------------------------


def test_components_of_an_empty_graph() -> None:
    assert strongly_connected([]) == []


def test_every_node_is_its_own_component_in_a_dag() -> None:
    edges: Graph = [[], [0], [0, 1]]
    assert sorted(strongly_connected(edges)) == [(0,), (1,), (2,)]


def test_components_group_mutually_reachable_nodes() -> None:
    # 0 <-> 1, 2 -> 3 -> 4 -> 2, 5 alone (depending on both cycles)
    edges: Graph = [[1], [0], [3], [4], [2], [0, 2]]
    components = {frozenset(c) for c in strongly_connected(edges)}
    assert components == {frozenset({0, 1}), frozenset({2, 3, 4}), frozenset({5})}


def test_components_come_out_targets_first() -> None:
    edges: Graph = [[1], [2], []]  # 0 -> 1 -> 2
    assert strongly_connected(edges) == [(2,), (1,), (0,)]


def test_a_deep_chain_needs_no_recursion() -> None:
    count = 50_000
    edges: Graph = [[i + 1] for i in range(count - 1)] + [[0]]
    [component] = strongly_connected(edges)
    assert sorted(component) == list(range(count))
    assert find_cycles(edges) == [tuple(range(count))]


# --- cycle_through and find_cycles --------------------------------------------------------------


def test_cycle_through_is_the_shortest_and_starts_at_start() -> None:
    # 0 -> 1 -> 2 -> 0 and the shortcut 0 -> 2 -> 0
    edges: Graph = [[1, 2], [2], [0]]
    assert cycle_through(0, edges, {0, 1, 2}) == (0, 2)
    assert cycle_through(1, edges, [0, 1, 2]) == (1, 2, 0)


def test_cycle_through_stays_within_the_given_nodes() -> None:
    edges: Graph = [[1, 2], [0], [0]]
    assert cycle_through(0, edges, {0, 2}) == (0, 2)


def test_cycle_through_without_a_cycle_raises() -> None:
    with pytest.raises(ValueError, match="no cycle through node 0"):
        cycle_through(0, [[1], []], {0, 1})


def test_no_cycles_in_a_dag() -> None:
    assert find_cycles([[], [0], [0, 1], [2, 0]]) == []


def test_one_cycle_per_component_sorted_by_lowest_node() -> None:
    # component {3, 4}; component {1, 2, 5} with two cycles through 1; node 0 outside
    edges: Graph = [[1, 3], [5, 2], [1], [4], [3], [2]]
    assert find_cycles(edges) == [(1, 2), (3, 4)]


def test_self_loops_alone_are_not_reported() -> None:
    assert find_cycles([[0], [1, 0]]) == []


def test_repeated_edges_change_nothing() -> None:
    assert find_cycles([[1, 1], [0, 0]]) == [(0, 1)]


@pytest.mark.parametrize("seed", range(30))
def test_cycles_agree_with_reachability(seed: int) -> None:
    rng = random.Random(seed)
    count = rng.randint(1, 12)
    edges: Graph = [
        [t for t in range(count) if t != n and rng.random() < 0.2] for n in range(count)
    ]
    cycles = find_cycles(edges)
    for cycle in cycles:
        assert _is_cycle(cycle, edges)
    on_a_cycle = {n for n in range(count) if any(n in _reaches(edges, t) for t in edges[n])}
    covered = {n for cycle in cycles for n in cycle}
    assert covered <= on_a_cycle
    # every node on a cycle shares a component with the start of exactly one reported cycle
    starts = [cycle[0] for cycle in cycles]
    for node in on_a_cycle:
        same = [s for s in starts if node in _reaches(edges, s) and s in _reaches(edges, node)]
        assert len(same) == 1


# --- topological_order -------------------------------------------------------------------------


def test_topological_order_of_an_empty_graph() -> None:
    assert topological_order([]) == ()


def test_targets_come_first_and_ties_go_to_the_lowest_node() -> None:
    # 0 depends on 2; 1 on nothing; 2 on nothing; 3 on 1 and 0
    edges: Graph = [[2], [], [], [1, 0]]
    assert topological_order(edges) == (1, 2, 0, 3)


def test_definition_order_is_kept_when_it_is_already_topological() -> None:
    edges: Graph = [[], [0], [0], [1, 2], [3, 3]]
    assert topological_order(edges) == (0, 1, 2, 3, 4)


@pytest.mark.parametrize("seed", range(30))
def test_topological_order_of_random_dags(seed: int) -> None:
    rng = random.Random(seed)
    count = rng.randint(0, 15)
    # edges to lower numbers only (acyclic), then the nodes renumbered at random
    lower: Graph = [[t for t in range(n) if rng.random() < 0.3] for n in range(count)]
    permutation = list(range(count))
    rng.shuffle(permutation)
    shuffled: Graph = [[] for _ in range(count)]
    for n, targets in enumerate(lower):
        shuffled[permutation[n]] = [permutation[t] for t in targets]
    order = topological_order(shuffled)
    assert sorted(order) == list(range(count))
    position = {node: i for i, node in enumerate(order)}
    for node, targets in enumerate(shuffled):
        assert all(position[t] < position[node] for t in targets)


def test_a_cycle_has_no_topological_order() -> None:
    with pytest.raises(GraphCycle) as info:
        topological_order([[], [2], [3], [1]])
    assert info.value.cycle == (1, 2, 3)
    assert str(info.value) == "cycle: 1 -> 2 -> 3 -> 1"
    assert isinstance(info.value, ValueError)


def test_a_self_loop_is_a_cycle_of_one() -> None:
    with pytest.raises(GraphCycle) as info:
        topological_order([[], [1]])
    assert info.value.cycle == (1,)


def test_topological_order_is_total_for_every_small_dag() -> None:
    # every DAG on 3 nodes whose edges point to lower numbers, under every numbering
    pairs = [(1, 0), (2, 0), (2, 1)]
    for chosen in itertools.product([False, True], repeat=len(pairs)):
        for numbering in itertools.permutations(range(3)):
            edges: Graph = [[], [], []]
            for (a, b), on in zip(pairs, chosen, strict=True):
                if on:
                    edges[numbering[a]].append(numbering[b])
            order = topological_order(edges)
            position = {node: i for i, node in enumerate(order)}
            assert all(position[t] < position[n] for n, ts in enumerate(edges) for t in ts)
