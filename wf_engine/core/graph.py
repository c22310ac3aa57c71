"""Graph algorithms on directed graphs of numbered nodes: cycles and topological order.

A graph is an adjacency list ``edges``: nodes are the indexes ``0 .. len(edges) - 1`` and
``edges[n]`` lists the nodes that ``n`` has an edge to, in any order, repeats allowed. Results are
node indexes too (a cycle is a tuple of indexes), so the caller maps them back to its own names;
for a workflow, node ``n`` is the ``n``-th distinct step id and an edge points from a step to a
step it depends on (see ``validation._check_graph``).

Every function is O(nodes + edges), iterative (a deep graph cannot exhaust the recursion limit)
and deterministic: the same graph always gives the same answer, whatever order components are
found in.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Collection, Sequence

Edges = Sequence[Sequence[int]]


class GraphCycle(ValueError):
    """The graph has no topological order; ``cycle`` is one cycle that prevents it."""

    cycle: tuple[int, ...]

    def __init__(self, cycle: tuple[int, ...]) -> None:
        self.cycle = cycle
        super().__init__(cycle)

    def __str__(self) -> str:
        return "cycle: " + " -> ".join(str(node) for node in [*self.cycle, self.cycle[0]])


def strongly_connected(edges: Edges) -> list[tuple[int, ...]]:
    """The strongly connected components, each a tuple of its nodes; every node is in exactly one.

    Tarjan's algorithm with an explicit stack of (node, next edge index) frames. Components come
    out in reverse topological order (a component before any component that has an edge to it);
    the order of nodes inside a component is unspecified.
    """
    count = len(edges)
    order = [-1] * count  # discovery number, -1 while unvisited
    low = [0] * count
    on_stack = [False] * count
    stack: list[int] = []
    components: list[tuple[int, ...]] = []
    counter = 0
    for root in range(count):
        if order[root] != -1:
            continue
        order[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack[root] = True
        frames = [(root, 0)]
        while frames:
            node, next_edge = frames[-1]
            if next_edge < len(edges[node]):
                frames[-1] = (node, next_edge + 1)
                target = edges[node][next_edge]
                if order[target] == -1:
                    order[target] = low[target] = counter
                    counter += 1
                    stack.append(target)
                    on_stack[target] = True
                    frames.append((target, 0))
                elif on_stack[target]:
                    low[node] = min(low[node], order[target])
                continue
            frames.pop()
            if frames:
                parent = frames[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == order[node]:
                members: list[int] = []
                while True:
                    member = stack.pop()
                    on_stack[member] = False
                    members.append(member)
                    if member == node:
                        break
                components.append(tuple(members))
    return components


def cycle_through(start: int, edges: Edges, within: Collection[int]) -> tuple[int, ...]:
    """The shortest cycle from ``start`` back to itself visiting only nodes of ``within``.

    Breadth-first, following each node's edges in list order, so the cycle is short and the same
    on every run. The cycle starts at ``start`` and does not repeat it at the end: ``(0, 1)`` is
    ``0 -> 1 -> 0``. ``within`` is usually ``start``'s strongly connected component. Raises
    ``ValueError`` when there is no such cycle.
    """
    inside = within if isinstance(within, (set, frozenset)) else frozenset(within)
    parent: dict[int, int] = {start: start}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for target in edges[node]:
            if target == start:
                path = [node]
                while path[-1] != start:
                    path.append(parent[path[-1]])
                return tuple(path[::-1])
            if target in inside and target not in parent:
                parent[target] = node
                queue.append(target)
    raise ValueError(f"no cycle through node {start}")


def find_cycles(edges: Edges) -> list[tuple[int, ...]]:
    """One cycle per strongly connected component of two or more nodes, sorted by first node.

    Each cycle is the shortest one (``cycle_through``) from the component's lowest-numbered node,
    so it starts there. A self-loop (an edge ``n -> n``) alone forms no such component and is not
    reported: callers that allow self-loops in ``edges`` look for them themselves. Empty when the
    graph, self-loops aside, is acyclic.
    """
    cycles = [
        cycle_through(min(members), edges, frozenset(members))
        for members in strongly_connected(edges)
        if len(members) >= 2
    ]
    return sorted(cycles, key=lambda cycle: cycle[0])


def topological_order(edges: Edges) -> tuple[int, ...]:
    """Every node once, each after every node it has an edge to (for a workflow: its dependencies).

    Of the nodes whose targets are all placed, the lowest-numbered comes next, so the order is
    unique and, for a workflow, as close to definition order as the dependencies allow. Raises
    ``GraphCycle`` naming one cycle (a self-loop is the cycle ``(n,)``) when there is no such
    order.
    """
    remaining = [len(targets) for targets in edges]  # edges to nodes not yet placed
    sources: list[list[int]] = [[] for _ in edges]  # for each node, the nodes with an edge to it
    for node, targets in enumerate(edges):
        for target in targets:
            sources[target].append(node)
    ready = [node for node, count in enumerate(remaining) if count == 0]
    heapq.heapify(ready)
    order: list[int] = []
    while ready:
        node = heapq.heappop(ready)
        order.append(node)
        for source in sources[node]:
            remaining[source] -= 1
            if remaining[source] == 0:
                heapq.heappush(ready, source)
    if len(order) == len(edges):
        return tuple(order)
    cycles = find_cycles(edges)
    if cycles:
        raise GraphCycle(cycles[0])
    loop = min(node for node, targets in enumerate(edges) if node in targets)
    raise GraphCycle((loop,))
