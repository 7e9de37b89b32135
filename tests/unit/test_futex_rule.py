"""The futex rule on snapshots built in code: an owner is named only when the memory proves
one (glibc mutex words, a PI word, a robust mutex, a join's tid word), and every TID read
from the target is translated from its pid namespace to a host TID."""

from __future__ import annotations

import signal
import struct

from rule_fakes import FakeMemory, FakeSnapshot, task

from waitchain.model import EdgeKind, EndKind, Ownerless, Reason, Wait
from waitchain.procfs import cstructs
from waitchain.records import replace
from waitchain.render.labels import label
from waitchain.render.ends import NO_OWNER, detail
from waitchain.waits import wait_of

NS = "pid:[4026532999]"  # the program's pid namespace (not ours)
PID = 100  # host ids: 100, 101, 102; in the namespace: 1, 2, 3
WAIT_PRIVATE, WAIT_BITSET_SHARED, LOCK_PI_PRIVATE = 128, 9 | 256, 6 | 128
ADDR = 0x7F0000001000
STDIO_OWNER = 0x7F6F357E26C0  # a struct pthread pointer, as stdio's _IO_lock_t keeps it


class Memory(FakeMemory):
    def u32(self, pid: int, address: int) -> int:
        return cstructs.u32(self.read(pid, address, 4))

    def mutex(self, pid: int, address: int) -> cstructs.MutexWords:
        return cstructs.mutex(self.read(pid, address, cstructs.MUTEX.size))


def snapshot(ns: str = NS) -> FakeSnapshot:
    snap = FakeSnapshot()
    snap.memory = Memory()  # type: ignore[assignment]
    snap.add_process(PID, pidns=ns)
    snap.threads[PID] = [task(PID + i, "futex") for i in range(3)]
    local = {0: 1, 1: 2, 2: 3} if ns == NS else {i: PID + i for i in range(3)}
    snap.set_status(PID, None, NSpid=f"{PID} {local[0]}" if ns == NS else str(PID))
    for i in range(3):
        ids = f"{PID + i} {local[i]}" if ns == NS else str(PID + i)
        snap.set_status(PID, PID + i, NSpid=ids)
    return snap


def words(lock: int, count: int, owner: int, nusers: int, kind: int) -> bytes:
    return cstructs.MUTEX.pack(lock, count, owner, nusers, kind)


def waiting(snap: FakeSnapshot, tid: int, op: int, val: int) -> Wait:
    return wait_of(snap, PID, task(tid, "futex", ADDR, op, val))


def own_threads(wait: Wait) -> Ownerless:
    """A private futex that names no owner: an edge to the waiter's own process, no end."""
    edge = wait.edges[0]
    assert (edge.kind, edge.to_pid, edge.to_tid, edge.address) == (EdgeKind.FUTEX, PID, None, ADDR)
    assert wait.end is None and edge.ownerless is not None
    return edge.ownerless


def edge_of(wait: Wait):
    (edge,) = wait.edges
    return edge.kind, edge.to_pid, edge.to_tid


# --- glibc mutexes waited on with value 2 --------------------------------------------------------


def test_mutex_owner_is_translated_to_the_host_tid() -> None:
    snap = snapshot()
    snap.memory.put(PID, ADDR, words(2, 0, 3, 1, 0))
    wait = waiting(snap, 101, WAIT_PRIVATE, 2)
    assert edge_of(wait) == (EdgeKind.MUTEX, PID, 102)
    assert "owner TID=3" in wait.edges[0].evidence and "NSpid" in wait.edges[0].evidence
    assert wait.syscall == "futex" and wait.edges[0].syscall == "futex"


def test_a_timed_lock_has_the_clock_as_a_way_out() -> None:
    """pthread_mutex_timedlock: the owner is named, and the timeout makes the wait not stuck."""
    snap = snapshot()
    snap.memory.put(PID, ADDR, words(2, 0, 3, 1, 0))
    timed = wait_of(snap, PID, task(101, "futex", ADDR, WAIT_PRIVATE, 2, 0x7FFF0000))
    assert edge_of(timed) == (EdgeKind.MUTEX, PID, 102)
    assert [(e.kind, e.reason) for e in timed.live] == [(EndKind.SLEEPING, Reason.TIMEOUT)]
    assert waiting(snap, 101, WAIT_PRIVATE, 2).live == ()


def test_mutex_owner_in_our_namespace_is_its_own_tid() -> None:
    snap = snapshot(ns="pid:[4026531836]")
    snap.memory.put(PID, ADDR, words(2, 0, 102, 1, 0))
    assert edge_of(waiting(snap, 101, WAIT_PRIVATE, 2)) == (EdgeKind.MUTEX, PID, 102)


def test_stdio_lock_owner_pointer_is_not_an_owner() -> None:
    """_IO_lock_t {int lock; int cnt; void *owner}: owner and nusers are the pointer's halves."""
    snap = snapshot()
    snap.memory.put(PID, ADDR, struct.pack("=iiQi", 2, 1, STDIO_OWNER, 0))
    wait = waiting(snap, 101, WAIT_PRIVATE, 2)
    assert own_threads(wait) == Ownerless.UNPROVED
    assert label(wait.edges[0]) == ("waits for another thread of its process (a lock word whose owner "
                                    "cannot be proved)")


def test_a_pointer_whose_low_half_is_a_tid_is_still_not_an_owner() -> None:
    snap = snapshot()
    snap.memory.put(PID, ADDR, struct.pack("=iiQi", 2, 1, 0x7F6F00000003, 0))  # owner 3, nusers 0x7f6f
    assert own_threads(waiting(snap, 101, WAIT_PRIVATE, 2)) == Ownerless.UNPROVED


def test_implausible_kinds_are_not_mutexes() -> None:
    for kind in (0x12345, -1, 16, 128):  # unknown bits, destroyed, robust, shared on a private futex
        snap = snapshot()
        snap.memory.put(PID, ADDR, words(2, 0, 3, 1, kind))
        assert own_threads(waiting(snap, 101, WAIT_PRIVATE, 2)) == Ownerless.UNPROVED, kind


def test_known_kinds_and_flags_are_mutexes() -> None:
    for kind in (0, 1, 2, 3, 256, 512 | 1):  # timed, recursive, errorcheck, adaptive, elision flags
        snap = snapshot()
        snap.memory.put(PID, ADDR, words(2, 0, 3, 1, kind))
        assert edge_of(waiting(snap, 101, WAIT_PRIVATE, 2)) == (EdgeKind.MUTEX, PID, 102), kind


def test_a_released_or_ownerless_lock_names_no_owner() -> None:
    for lock, owner in ((0, 3), (2, 0), (2, 9)):  # released, no owner, no such thread
        snap = snapshot()
        snap.memory.put(PID, ADDR, words(lock, 0, owner, 1, 0))
        assert own_threads(waiting(snap, 101, WAIT_PRIVATE, 2)) == Ownerless.UNPROVED, (lock, owner)


def test_unreadable_memory_is_said() -> None:
    wait = waiting(snapshot(), 101, WAIT_PRIVATE, 2)
    assert (wait.end.kind, wait.end.reason) == (EndKind.UNKNOWN, Reason.NOT_READABLE)


# --- process-shared mutexes: the owner in another process of the namespace ---------------------


def test_shared_mutex_owner_found_in_another_process_of_the_namespace() -> None:
    snap = snapshot()
    snap.add_process(200, pidns=NS)
    snap.threads[200] = [task(200, "nanosleep")]
    snap.set_status(200, None, NSpid="200 5")
    snap.set_status(200, 200, NSpid="200 5")
    snap.memory.put(PID, ADDR, words(2, 0, 5, 1, 128))
    wait = waiting(snap, 101, 0, 2)  # FUTEX_WAIT, shared
    assert edge_of(wait) == (EdgeKind.MUTEX, 200, 200)
    assert label(wait.edges[0]) == "waits for thread 200 of process 200, the mutex owner"


def test_private_mutex_owner_is_never_looked_for_elsewhere() -> None:
    snap = snapshot()
    snap.add_process(200, pidns=NS)
    snap.threads[200] = [task(200, "nanosleep")]
    snap.set_status(200, 200, NSpid="200 5")
    snap.memory.put(PID, ADDR, words(2, 0, 5, 1, 0))
    assert own_threads(waiting(snap, 101, WAIT_PRIVATE, 2)) == Ownerless.UNPROVED


# --- pthread_join, PI and robust mutexes -------------------------------------------------------


def test_join_on_a_small_namespace_tid() -> None:
    """In a pid namespace the joined thread may be TID 2: the value a mutex waits with."""
    snap = snapshot()
    snap.memory.put(PID, ADDR, words(2, 0, 0x1234ABCD, 0x7FFF, 0x1234ABCD))  # struct pthread's words
    wait = waiting(snap, PID, WAIT_BITSET_SHARED, 2)
    assert edge_of(wait) == (EdgeKind.JOIN, PID, 101)
    assert "NSpid" in wait.edges[0].evidence


def test_a_private_wait_on_value_2_is_not_a_join() -> None:
    snap = snapshot()
    snap.memory.put(PID, ADDR, words(2, 0, 0x1234ABCD, 0x7FFF, 0x1234ABCD))
    assert own_threads(waiting(snap, PID, WAIT_PRIVATE, 2)) == Ownerless.UNPROVED


def test_pi_word_owner_and_an_exited_owner() -> None:
    snap = snapshot()
    snap.memory.put(PID, ADDR, struct.pack("=I", 0x80000003))
    assert edge_of(waiting(snap, 101, LOCK_PI_PRIVATE, 0)) == (EdgeKind.MUTEX, PID, 102)
    snap.memory.put(PID, ADDR, struct.pack("=I", 0x80000007))
    wait = waiting(snap, 101, LOCK_PI_PRIVATE, 0)
    assert (wait.end.kind, wait.end.reason) == (EndKind.UNKNOWN, Reason.OWNER_EXITED)
    assert (wait.end.address, wait.end.owner) == (ADDR, 7)
    assert detail(wait.end) == (f"the mutex at {ADDR:#x} names owner TID 7, which is not a live thread: "
                                "it exited holding the lock")


def test_robust_mutex_only_when_its_kind_says_robust() -> None:
    snap = snapshot()
    snap.memory.put(PID, ADDR, words(-0x7FFFFFFD, 0, 3, 1, 16))  # __lock is 0x80000003
    assert edge_of(waiting(snap, 101, 0, 0x80000003)) == (EdgeKind.MUTEX, PID, 102)
    snap.memory.put(PID, ADDR, words(-0x7FFFFFFD, 0, 3, 1, 0))
    shared = waiting(snap, 101, 0, 0x80000003)  # another process mapping the page may wake it
    assert shared.edges == () and shared.end is not None
    assert (shared.end.kind, shared.end.reason, shared.end.ownerless) == (
        EndKind.UNKNOWN, Reason.NO_OWNER, Ownerless.NONE_RECORDED)
    assert NO_OWNER in detail(shared.end)


def test_python_lock_names_no_owner() -> None:
    snap = snapshot()
    wait = wait_of(snap, PID, task(101, "futex", ADDR, 9 | 128 | 256, 0))
    assert own_threads(wait) == Ownerless.NONE_RECORDED and wait.live == ()
    snap.processes[PID] = replace(snap.processes[PID], comm="python3")
    assert own_threads(wait_of(snap, PID, task(101, "futex", ADDR, 9 | 128 | 256, 0))) == Ownerless.PYTHON


# --- private futexes that record no owner: only the process's own threads wake them -------------


def test_a_timed_ownerless_wait_has_the_clock_as_a_way_out() -> None:
    wait = wait_of(snapshot(), PID, task(101, "futex", ADDR, 9 | 128, 0, 0x7FFF0000))
    assert own_threads(wait) == Ownerless.NONE_RECORDED
    assert [(e.kind, e.reason) for e in wait.live] == [(EndKind.SLEEPING, Reason.TIMEOUT)]


def test_a_signal_handler_some_thread_can_run_may_wake_it() -> None:
    """A handler may post a semaphore or set an Event: a live way out, with its signals."""
    snap = snapshot()
    snap.set_status(PID, None, SigCgt=f"{1 << (signal.SIGTERM - 1):016x}")
    snap.set_status(PID, 101, SigBlk=f"{1 << (signal.SIGTERM - 1):016x}")  # one thread blocks it
    wait = waiting(snap, 101, 9 | 128, 0)
    assert own_threads(wait) == Ownerless.NONE_RECORDED
    assert [(e.kind, e.reason, e.signals) for e in wait.live] == [
        (EndKind.SIGNAL, Reason.SIGNAL_HANDLER, ("SIGTERM",))]
    assert detail(wait.live[0]).startswith("a handler of SIGTERM may wake it")


def test_handlers_that_cannot_wake_it() -> None:
    """Blocked in every thread; glibc's internal signals 32 and 33; Python's SIGINT handler
    (KeyboardInterrupt ends the program's wait, it does not wake it)."""
    term, internal = 1 << (signal.SIGTERM - 1), (1 << 31) | (1 << 32)
    snap = snapshot()
    snap.set_status(PID, None, SigCgt=f"{term | internal:016x}")
    for i in range(3):
        snap.set_status(PID, PID + i, SigBlk=f"{term:016x}")
    assert waiting(snap, 101, 9 | 128, 0).live == ()
    sigint = snapshot()
    sigint.set_status(PID, None, SigCgt=f"{1 << (signal.SIGINT - 1):016x}")
    assert [e.signals for e in waiting(sigint, 101, 9 | 128, 0).live] == [("SIGINT",)]
    sigint.processes[PID] = replace(sigint.processes[PID], comm="python3.11")
    assert waiting(sigint, 101, 9 | 128, 0).live == ()


def test_a_sigchld_handler_is_woken_by_the_live_children() -> None:
    snap = snapshot()
    snap.add_process(300, ppid=PID)
    snap.add_process(301, ppid=PID, state="Z")
    snap.set_status(PID, None, SigCgt=f"{1 << (signal.SIGCHLD - 1):016x}")
    wait = waiting(snap, 101, 9 | 128, 0)
    assert [(e.kind, e.to_pid) for e in wait.edges] == [(EdgeKind.FUTEX, PID), (EdgeKind.SIGCHLD, 300)]
    assert wait.live == ()
