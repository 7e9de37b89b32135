"""The pure wait-for graph (graph/waitfor.py) on graphs built in code: which threads are
stuck, the knots they form, process cycles and rings. Exact expected sets for the named
shapes (the demo, the broker knot, OR waits with a live branch, ALL waits, self-edges,
multi-threaded processes, long chains, many SCCs), then a property test against a
brute-force reference on random small graphs."""

from __future__ import annotations

import random
import tempfile
from pathlib import Path
from typing import Dict, FrozenSet, Iterable, List, Optional, Sequence, Set, Tuple

import pytest

from waitchain.graph.waitfor import Knot, Node, WaitFor, components, shortest_ring
from waitchain.model import Mode

ANY, ALL = Mode.ANY, Mode.ALL
Key = Tuple[int, int]


def T(pid: int, tid: Optional[int] = None) -> Key:
    """A thread key; the main thread when tid is left out."""
    return (pid, pid if tid is None else tid)


def P(pid: int) -> Tuple[int, None]:
    """A process target: any thread of pid."""
    return (pid, None)


def waits(key: Key, *targets, mode: Mode = ANY, exit: bool = False) -> Node:
    return Node(key, tuple(targets), mode, exit)


def sleeps(key: Key) -> Node:
    return Node(key)


def knot_sets(graph: WaitFor) -> List[FrozenSet[Key]]:
    return [frozenset(k.threads) for k in graph.knots()]


def assert_ring(ring: Sequence, first, step) -> None:
    """A closed ring starting at first whose consecutive members (and last → first) are edges."""
    assert ring and ring[0] == first
    assert len(set(ring)) == len(ring)
    for a, b in zip(ring, list(ring[1:]) + [ring[0]]):
        assert b in list(step(a)), (a, b)


# --- the demo and the broker ---------------------------------------------------------------

WRAPPER, CLIENT, SERVER, CHILD = 10, 20, 30, 40


def demo_nodes() -> List[Node]:
    return [
        waits(T(WRAPPER), P(CLIENT)),  # wrapper waits for its child, the client
        waits(T(CLIENT), P(SERVER)),  # client reads the server's reply
        waits(T(SERVER), P(CHILD)),  # server: p.wait() on its child
        waits(T(CHILD), P(SERVER)),  # child: write() to a full pipe the server would read
    ]


def test_demo_all_stuck_one_knot_of_server_and_child():
    g = WaitFor(demo_nodes())
    assert g.stuck() == {T(WRAPPER), T(CLIENT), T(SERVER), T(CHILD)}
    assert g.knots() == [Knot((T(SERVER), T(CHILD)))]
    assert knot_sets(g) == [{T(SERVER), T(CHILD)}]
    assert g.knots()[0].pids == (SERVER, CHILD)
    assert g.cycles() == [[SERVER, CHILD]]
    knot = g.knots()[0]
    for first in knot.threads:
        ring = g.thread_ring(knot, first)
        assert sorted(ring) == [T(SERVER), T(CHILD)]
        assert_ring(ring, first, lambda k: g.stuck_successors(k, g.stuck()))
    assert g.process_ring([SERVER, CHILD], CHILD) == [CHILD, SERVER]


def test_demo_child_with_a_timeout_frees_everyone():
    nodes = demo_nodes()
    nodes[3] = waits(T(CHILD), P(SERVER), exit=True)
    g = WaitFor(nodes)
    assert g.stuck() == set()
    assert g.knots() == []
    assert g.cycles() == [[SERVER, CHILD]]  # the shape is still a cycle


BROKER, C1, C2 = 100, 101, 102


def test_broker_knot_of_three():
    g = WaitFor([
        waits(T(BROKER), P(C1), P(C2), mode=ANY),  # polls both clients for a request
        waits(T(C1), P(BROKER)),  # each client waits for the broker's reply
        waits(T(C2), P(BROKER)),
    ])
    assert g.stuck() == {T(BROKER), T(C1), T(C2)}
    assert knot_sets(g) == [{T(BROKER), T(C1), T(C2)}]
    assert g.cycles() == [[BROKER, C1, C2]]
    knot = g.knots()[0]
    step = lambda k: g.stuck_successors(k, g.stuck())  # noqa: E731
    for first in knot.threads:
        ring = g.thread_ring(knot, first)
        assert len(ring) == 2
        assert_ring(ring, first, step)
    for first in (BROKER, C1, C2):
        ring = g.process_ring([BROKER, C1, C2], first)
        assert len(ring) == 2
        assert_ring(ring, first, g.successors)


def test_broker_with_one_client_free_is_not_stuck():
    g = WaitFor([
        waits(T(BROKER), P(C1), P(C2)),
        waits(T(C1), P(BROKER)),
        waits(T(C2), P(BROKER), exit=True),  # c2 has a timeout: it will send again
    ])
    assert g.stuck() == set()
    assert g.knots() == []


# --- OR waits with one live branch ------------------------------------------------------------


def test_or_wait_with_a_live_branch_is_not_stuck_but_the_cycle_stays():
    a, b, w, free = 1, 2, 3, 4
    g = WaitFor([
        waits(T(a), P(b)),
        waits(T(b), P(a)),
        waits(T(w), T(a), P(free), mode=ANY),  # on a stuck cycle member, or on a free process
        sleeps(T(free)),
    ])
    assert g.stuck() == {T(a), T(b)}
    assert knot_sets(g) == [{T(a), T(b)}]


def test_or_wait_with_an_unknown_process_branch_is_not_stuck():
    a, b, w = 1, 2, 3
    g = WaitFor([waits(T(a), P(b)), waits(T(b), P(a)), waits(T(w), T(a), P(999))])
    assert g.stuck() == {T(a), T(b)}


def test_a_cycle_member_that_waits_on_the_or_waiter_is_freed_through_it():
    a, b, c, free = 1, 2, 3, 4
    # a → b → c → {a or free}: c can go on, so b, and so a.
    g = WaitFor([
        waits(T(a), P(b)),
        waits(T(b), P(c)),
        waits(T(c), P(a), P(free), mode=ANY),
        sleeps(T(free)),
    ])
    assert g.stuck() == set()
    assert g.knots() == []
    assert g.cycles() == [[a, b, c]]


def test_the_live_branch_frees_only_what_depends_on_it():
    # a ↔ b stuck; c waits on {a or d}, d waits on {c or free}: c, d free; a, b not.
    a, b, c, d, free = 1, 2, 3, 4, 5
    g = WaitFor([
        waits(T(a), P(b)),
        waits(T(b), P(a)),
        waits(T(c), P(a), P(d)),
        waits(T(d), P(c), P(free)),
        sleeps(T(free)),
    ])
    assert g.stuck() == {T(a), T(b)}
    assert knot_sets(g) == [{T(a), T(b)}]
    assert g.cycles() == [[a, b], [c, d]]


def test_a_live_branch_reached_late_frees_a_long_cycle():
    # A ring of 6 where one member also waits (ANY) on a chain that ends free.
    ring = list(range(1, 7))
    nodes = [waits(T(p), P(ring[(i + 1) % 6])) for i, p in enumerate(ring)]
    nodes[3] = waits(T(4), P(5), P(50))
    nodes += [waits(T(50), P(51)), waits(T(51), P(52)), sleeps(T(52))]
    assert WaitFor(nodes).stuck() == set()
    nodes[-1] = waits(T(52), P(50))  # the side chain loops back on itself instead
    g = WaitFor(nodes)
    assert g.stuck() == {T(p) for p in ring + [50, 51, 52]}
    assert knot_sets(g) == [{T(50), T(51), T(52)}]


# --- ALL waits -----------------------------------------------------------------------------------


def test_all_wait_with_one_reader_stuck_is_stuck():
    writer, r1, r2, x, y = 1, 2, 3, 4, 5
    g = WaitFor([
        waits(T(writer), T(r1), T(r2), mode=ALL),  # a write lock behind two readers
        sleeps(T(r1)),
        waits(T(r2), P(x)),
        waits(T(x), P(y)),
        waits(T(y), P(x)),
    ])
    assert g.stuck() == {T(writer), T(r2), T(x), T(y)}
    assert knot_sets(g) == [{T(x), T(y)}]


def test_all_wait_with_both_readers_free_is_free():
    writer, r1, r2 = 1, 2, 3
    g = WaitFor([waits(T(writer), T(r1), T(r2), mode=ALL), sleeps(T(r1)), waits(T(r2), P(99))])
    assert g.stuck() == set()


def test_all_wait_freed_when_its_last_stuck_target_is_freed():
    # The stuck reader waits on a process whose sibling thread is free.
    writer, r1, r2, q = 1, 2, 3, 4
    g = WaitFor([
        waits(T(writer), T(r1), T(r2), mode=ALL),
        waits(T(r1), P(q)),
        waits(T(r2), P(q)),
        waits(T(q, 1), P(writer)),
        waits(T(q, 2), T(q, 1), exit=True),
    ])
    assert g.stuck() == set()


def test_all_wait_counts_a_process_freed_once_however_many_threads_it_frees():
    # p's two threads are both freed; p counts once for the ALL wait, which still needs r.
    w, p, r, free = 1, 2, 3, 4
    g = WaitFor([
        waits(T(w), P(p), T(r), mode=ALL),
        waits(T(p, 1), P(free)),
        waits(T(p, 2), P(free)),
        waits(T(r), P(r)),
        sleeps(T(free)),
    ])
    assert g.stuck() == {T(w), T(r)}
    assert knot_sets(g) == [{T(r)}]


def test_all_wait_on_each_other_is_a_knot():
    a, b = 1, 2
    g = WaitFor([waits(T(a), T(b), P(77), mode=ALL), waits(T(b), T(a), mode=ALL), sleeps(T(77))])
    assert g.stuck() == {T(a), T(b)}
    assert knot_sets(g) == [{T(a), T(b)}]


# --- self-edges ----------------------------------------------------------------------------------


def test_self_wait_of_a_single_threaded_process_is_a_knot_of_one():
    p = 7
    g = WaitFor([waits(T(p), P(p))])
    assert g.stuck() == {T(p)}
    assert g.knots() == [Knot((T(p),))]
    assert g.cycles() == [[p]]
    assert g.thread_ring(g.knots()[0], T(p)) == [T(p)]
    assert g.process_ring([p], p) == [p]


def test_self_wait_with_a_sleeping_sibling_is_not_stuck():
    p = 7
    g = WaitFor([waits(T(p, 1), P(p)), sleeps(T(p, 2))])
    assert g.stuck() == set()
    assert g.knots() == []
    assert g.cycles() == [[p]]  # the self-loop is there, it just is not stuck


def test_self_wait_with_a_sibling_stuck_on_it_is_a_knot_of_two():
    p = 7
    g = WaitFor([waits(T(p, 1), P(p)), waits(T(p, 2), T(p, 1))])
    assert g.stuck() == {T(p, 1), T(p, 2)}
    # t1 waits on any thread of p, so on t2 too: t1 and t2 form one knot.
    assert knot_sets(g) == [{T(p, 1), T(p, 2)}]
    assert g.thread_ring(g.knots()[0], T(p, 1)) == [T(p, 1)]  # its own self-loop is shortest
    assert g.thread_ring(g.knots()[0], T(p, 2)) == [T(p, 2), T(p, 1)]


def test_self_wait_on_own_thread_target():
    p = 7
    g = WaitFor([waits(T(p, 1), T(p, 1))])
    assert g.stuck() == {T(p, 1)}
    assert g.knots() == [Knot((T(p, 1),))]


# --- multi-threaded processes --------------------------------------------------------------------


def test_abba_knot_of_two_threads_and_the_joining_main_thread_outside():
    p = 500
    main, t1, t2 = T(p, 500), T(p, 501), T(p, 502)
    g = WaitFor([
        waits(t1, t2, mode=ALL),  # t1 holds A, wants B (held by t2)
        waits(t2, t1, mode=ALL),  # t2 holds B, wants A (held by t1)
        waits(main, t1, mode=ALL),  # main joins t1
    ])
    assert g.stuck() == {main, t1, t2}
    assert knot_sets(g) == [{t1, t2}]
    assert g.cycles() == [[p]]
    assert g.process_stuck(p, g.stuck())


def test_abba_with_a_free_main_thread_the_process_can_act():
    p, waiter = 500, 600
    main, t1, t2 = T(p, 500), T(p, 501), T(p, 502)
    g = WaitFor([waits(t1, t2), waits(t2, t1), sleeps(main), waits(T(waiter), P(p))])
    assert g.stuck() == {t1, t2}
    assert knot_sets(g) == [{t1, t2}]
    assert not g.process_stuck(p, g.stuck())


def test_waiter_on_a_process_whose_main_thread_is_free_is_not_stuck():
    p, q = 1, 2
    g = WaitFor([waits(T(q), P(p)), waits(T(p, 11), P(q)), sleeps(T(p, 1))])
    assert g.stuck() == set()


def test_a_process_frees_its_waiters_when_its_last_stuck_thread_does_not_matter():
    # p's threads wait on q and on r; r is free, so p is free, so q's wait on p ends.
    p, q, r = 1, 2, 3
    g = WaitFor([
        waits(T(p, 1), P(q)),
        waits(T(p, 2), P(r)),
        waits(T(q), P(p)),
        sleeps(T(r)),
    ])
    assert g.stuck() == set()


def test_two_processes_all_threads_waiting_on_each_other():
    p, q = 1, 2
    g = WaitFor([
        waits(T(p, 1), P(q)),
        waits(T(p, 2), P(q)),
        waits(T(q, 1), P(p)),
        waits(T(q, 2), T(p, 1)),
    ])
    assert g.stuck() == {T(p, 1), T(p, 2), T(q, 1), T(q, 2)}
    assert knot_sets(g) == [{T(p, 1), T(p, 2), T(q, 1), T(q, 2)}]


def test_thread_target_of_a_known_process_but_unknown_thread_is_free():
    p = 1
    g = WaitFor([waits(T(p, 1), T(p, 99)), waits(T(p, 2), T(p, 1))])
    assert g.stuck() == set()


# --- exits and unknown targets -------------------------------------------------------------------


def test_exit_nodes_are_never_stuck():
    a, b = 1, 2
    g = WaitFor([waits(T(a), P(b), exit=True), waits(T(b), P(a), exit=True)])
    assert g.stuck() == set()
    g = WaitFor([waits(T(a), P(a), exit=True)])
    assert g.stuck() == set()
    g = WaitFor([waits(T(a), T(b), mode=ALL, exit=True), waits(T(b), T(a))])
    assert g.stuck() == set()


def test_targets_that_are_not_nodes_are_free():
    g = WaitFor([waits(T(1), P(2))])
    assert g.stuck() == set()
    g = WaitFor([waits(T(1), T(2, 3))])
    assert g.stuck() == set()
    g = WaitFor([waits(T(1), P(1), P(2), mode=ALL)])
    assert g.stuck() == {T(1)}  # ALL: the unknown one is free but its own process is not
    g = WaitFor([waits(T(1), P(2), P(3), mode=ALL)])
    assert g.stuck() == set()


def test_empty_graph_and_sleepers():
    assert WaitFor([]).stuck() == set()
    assert WaitFor([]).knots() == []
    assert WaitFor([]).cycles() == []
    g = WaitFor([sleeps(T(1)), sleeps(T(2))])
    assert g.stuck() == set() and g.knots() == [] and g.cycles() == []


def test_duplicate_targets_count_once():
    a, b = 1, 2
    g = WaitFor([waits(T(a), T(b), T(b), mode=ALL), waits(T(b), P(77), P(77)), sleeps(T(77))])
    assert g.stuck() == set()
    g = WaitFor([waits(T(a), P(b), P(b)), waits(T(b), T(a), T(a), mode=ALL)])
    assert g.stuck() == {T(a), T(b)}


# --- long chains, many SCCs ----------------------------------------------------------------------

LONG = 5000


def test_long_chain_into_a_two_cycle():
    nodes = [waits(T(i), P(i + 1)) for i in range(1, LONG + 1)]
    end = LONG + 1
    nodes += [waits(T(end), P(end + 1)), waits(T(end + 1), P(end))]
    random.Random(1).shuffle(nodes)
    g = WaitFor(nodes)
    assert g.stuck() == {T(i) for i in range(1, LONG + 3)}
    assert knot_sets(g) == [{T(end), T(end + 1)}]
    assert g.cycles() == [[end, end + 1]]
    assert g.process_ring(range(1, LONG + 3), 1) == []  # 1 is not on a cycle


def test_long_chain_into_a_free_process():
    nodes = [waits(T(i), P(i + 1)) for i in range(1, LONG + 1)]
    nodes.append(sleeps(T(LONG + 1)))
    g = WaitFor(nodes)
    assert g.stuck() == set()
    assert g.knots() == []
    assert g.cycles() == []


def test_long_chain_into_an_unknown_process_through_all_waits():
    nodes = [waits(T(i), T(i + 1), P(10**6 + i), mode=ALL) for i in range(1, LONG + 1)]
    assert WaitFor(nodes).stuck() == set()


def test_long_ring_is_one_knot_and_its_ring_is_whole():
    nodes = [waits(T(i), P(i % LONG + 1)) for i in range(1, LONG + 1)]
    g = WaitFor(nodes)
    assert len(g.stuck()) == LONG
    knots = g.knots()
    assert len(knots) == 1 and len(knots[0].threads) == LONG
    ring = g.thread_ring(knots[0], T(17))
    assert len(ring) == LONG
    assert_ring(ring, T(17), lambda k: g.stuck_successors(k, g.stuck()))
    assert g.cycles() == [list(range(1, LONG + 1))]
    assert g.process_ring(range(1, LONG + 1), 1) == list(range(1, LONG + 1))


def test_long_ring_freed_from_one_exit():
    nodes = [waits(T(i), P(i % LONG + 1)) for i in range(1, LONG + 1)]
    nodes[LONG // 2] = waits(nodes[LONG // 2].key, *nodes[LONG // 2].targets, exit=True)
    assert WaitFor(nodes).stuck() == set()


def test_many_independent_two_cycles():
    n = 1000
    nodes = []
    for i in range(n):
        a, b = 2 * i + 1, 2 * i + 2
        nodes += [waits(T(a), P(b)), waits(T(b), P(a))]
    random.Random(2).shuffle(nodes)
    g = WaitFor(nodes)
    assert len(g.stuck()) == 2 * n
    assert knot_sets(g) == [{T(2 * i + 1), T(2 * i + 2)} for i in range(n)]
    assert g.cycles() == [[2 * i + 1, 2 * i + 2] for i in range(n)]


def test_many_sccs_feeding_one_knot():
    # 1000 two-cycles that each also wait (ALL) on one final self-wait: only the last is a knot.
    n, sink = 1000, 10**6
    nodes = [waits(T(sink), P(sink))]
    for i in range(n):
        a, b = 2 * i + 1, 2 * i + 2
        nodes += [waits(T(a), P(b), P(sink), mode=ALL), waits(T(b), P(a))]
    g = WaitFor(nodes)
    assert len(g.stuck()) == 2 * n + 1
    assert knot_sets(g) == [{T(sink)}]
    assert len(g.cycles()) == n + 1


# --- cycles versus knots -------------------------------------------------------------------------


def test_cycles_include_a_process_cycle_that_is_not_stuck():
    client, server = 1, 2
    g = WaitFor([waits(T(client), P(server)), waits(T(server), P(client), exit=True)])
    assert g.stuck() == set()
    assert g.knots() == []
    assert g.cycles() == [[client, server]]
    assert g.process_ring([client, server], server) == [server, client]


def test_cycles_and_knots_side_by_side():
    g = WaitFor([
        waits(T(1), P(2)), waits(T(2), P(1), exit=True),  # a cycle, not stuck
        waits(T(3), P(4)), waits(T(4), P(3)),  # a knot
        waits(T(5), P(3)),  # stuck, outside the knot, on no cycle
    ])
    assert g.cycles() == [[1, 2], [3, 4]]
    assert knot_sets(g) == [{T(3), T(4)}]
    assert g.stuck() == {T(3), T(4), T(5)}


def test_cycles_through_unknown_processes_are_not_made_up():
    g = WaitFor([waits(T(1), P(2)), waits(T(3), P(2))])
    assert g.cycles() == []
    assert g.successors(1) == [2]
    assert g.successors(2) == []


# --- generic helpers -----------------------------------------------------------------------------


def adjacency(edges: Iterable[Tuple[str, str]]) -> Dict[str, List[str]]:
    out: Dict[str, List[str]] = {}
    for a, b in edges:
        out.setdefault(a, []).append(b)
        out.setdefault(b, [])
    return out


def test_shortest_ring_is_closed_and_shortest():
    adj = adjacency([("a", "b"), ("b", "c"), ("c", "d"), ("d", "a"), ("b", "a"), ("c", "e")])
    step = lambda n: adj.get(n, [])  # noqa: E731
    ring = shortest_ring("a", step)
    assert ring == ["a", "b"]
    assert_ring(ring, "a", step)
    ring = shortest_ring("c", step)
    assert ring == ["c", "d", "a", "b"]
    assert_ring(ring, "c", step)
    assert shortest_ring("e", step) == []


def test_shortest_ring_self_loop_and_none():
    assert shortest_ring(1, lambda n: [1]) == [1]
    assert shortest_ring(1, lambda n: [2, 1] if n == 1 else [1]) == [1]
    assert shortest_ring(1, lambda n: []) == []
    assert shortest_ring(1, lambda n: [n + 1] if n < 100 else []) == []  # a chain, no way back
    assert shortest_ring(0, lambda n: [n + 1] if n < 100 else [0])[-1] == 100  # a ring of 101


def test_shortest_ring_never_passes_through_first_twice():
    # 2 → 1 → … : a cycle 1 → 2 → 3 → 1 and a shortcut 2 → 1 that does not return to 3.
    adj = {3: [1], 1: [2], 2: [1, 3]}
    assert shortest_ring(3, lambda n: adj[n]) == [3, 1, 2]


def test_components_partition_and_order():
    adj = adjacency([("a", "b"), ("b", "a"), ("b", "c"), ("c", "d"), ("d", "c"), ("e", "e"), ("f", "a")])
    found = components(sorted(adj), lambda n: adj[n])
    assert sorted(sorted(c) for c in found) == [["a", "b"], ["c", "d"], ["e"], ["f"]]
    position = {n: i for i, c in enumerate(found) for n in c}
    for a, targets in adj.items():  # sinks first: every edge leads to the same or an earlier one
        for b in targets:
            assert position[b] <= position[a]


def test_components_deep_path_without_recursion():
    n = 50000
    found = components([0], lambda i: [i + 1] if i < n else [])
    assert len(found) == n + 1
    found = components([0], lambda i: [(i + 1) % n])
    assert len(found) == 1 and len(found[0]) == n


# --- property test against a brute-force reference -----------------------------------------------

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.configuration import set_hypothesis_home_dir  # noqa: E402

set_hypothesis_home_dir(str(Path(tempfile.gettempdir()) / "waitchain-hypothesis"))  # not in the repo


def reference_stuck(nodes: Sequence[Node]) -> Set[Key]:
    """The obvious quadratic way: everyone who waits with no way out, then remove any thread
    that can proceed until nothing changes."""
    by_key = {n.key: n for n in nodes}
    threads: Dict[int, Set[Key]] = {}
    for n in nodes:
        threads.setdefault(n.key[0], set()).add(n.key)
    stuck = {n.key for n in nodes if n.targets and not n.exit}

    def free(target) -> bool:
        pid, tid = target
        if tid is not None:
            return (pid, tid) not in stuck
        known = threads.get(pid, set())
        return not known or not known <= stuck

    changed = True
    while changed:
        changed = False
        for key in sorted(stuck):
            node = by_key[key]
            can = (any if node.mode == ANY else all)(free(t) for t in node.targets)
            if can:
                stuck.discard(key)
                changed = True
    return stuck


def reference_successors(nodes: Sequence[Node], stuck: Set[Key], key: Key) -> Set[Key]:
    node = next(n for n in nodes if n.key == key)
    out: Set[Key] = set()
    for pid, tid in node.targets:
        if tid is None:
            out |= {k for k in stuck if k[0] == pid}
        elif (pid, tid) in stuck:
            out.add((pid, tid))
    return out


def reachable(start: Key, succ) -> Set[Key]:
    seen, todo = {start}, [start]
    while todo:
        for nxt in succ(todo.pop()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


@st.composite
def graphs(draw) -> List[Node]:
    npids = draw(st.integers(1, 8))
    pids = list(range(1, npids + 1))
    keys = [(pid, pid * 10 + t) for pid in pids for t in range(draw(st.integers(1, 3)))]
    # targets: known threads, known processes, an unknown thread of a known process,
    # and an unknown process
    choices = [k for k in keys] + [(p, None) for p in pids] + [(1, 999), (99, None)]
    nodes = []
    for key in keys:
        targets = draw(st.lists(st.sampled_from(choices), max_size=4))
        mode = draw(st.sampled_from([ANY, ALL]))
        exit = draw(st.integers(0, 3)) == 0  # a way out for one node in four
        nodes.append(Node(key, tuple(targets), mode, exit))
    return nodes


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(graphs(), st.randoms(use_true_random=False))
def test_property_stuck_and_knots_against_reference(nodes, rnd):
    g = WaitFor(nodes)
    stuck = g.stuck()
    assert set(stuck) == reference_stuck(nodes)
    for n in nodes:
        if n.exit or not n.targets:
            assert n.key not in stuck

    succ = lambda k: reference_successors(nodes, stuck, k)  # noqa: E731
    knots = g.knots()
    seen: Set[Key] = set()
    for knot in knots:
        members = set(knot.threads)
        assert list(knot.threads) == sorted(members)
        assert members <= stuck
        assert not (members & seen)  # disjoint
        seen |= members
        for k in members:
            assert succ(k) <= members  # terminal within the stuck set
            assert reachable(k, succ) == members  # strongly connected
            ring = g.thread_ring(knot, k)
            assert_ring(ring, k, succ)
            assert set(ring) <= members
    for k in stuck:  # every stuck thread reaches a knot
        assert any(k2 in seen for k2 in reachable(k, succ)), k
        assert succ(k), k  # a stuck thread always has a stuck successor

    # the order nodes are given in changes nothing
    shuffled = list(nodes)
    rnd.shuffle(shuffled)
    g2 = WaitFor(shuffled)
    assert g2.stuck() == stuck
    assert g2.knots() == knots
    assert g2.cycles() == g.cycles()

    # every process cycle is an SCC with a cycle; its rings are real
    for cycle in g.cycles():
        assert cycle == sorted(cycle)
        inside = set(cycle)
        for p in cycle:
            ring = g.process_ring(cycle, p)
            assert_ring(ring, p, lambda q: [s for s in g.successors(q) if s in inside])
            assert reachable(p, lambda q: [s for s in g.successors(q) if s in inside]) == inside
