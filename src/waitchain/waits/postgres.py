"""A PostgreSQL backend's wait, refined from the generic one. A backend's latch wait is an OR
wait (epoll_wait on a signalfd for SIGURG, or a self-pipe on older servers, and the
postmaster-death pipe): the generic rules see a signal wait and an idle postmaster. Its
process title says more (snapshot.db_session): " waiting" means a heavyweight lock wait,
whose holder is another session; "idle in transaction" means it holds its locks while it
waits for its client.

- A lock wait becomes an end (reason DB_LOCK, with the title's facts) that names no holder;
  with --db (snapshot.pg_blockers asks the server), edges of kind pg-lock to each blocking
  backend instead, all of which must let go (Mode.ALL), so that the socket rules carry on
  from the holder to its client. When the server could not be asked, the end says why and
  which command failed.
- Any other client backend keeps its edges, each tagged with the title's facts (Edge.db):
  the one to its client is "idle in transaction: waits for its client".

One module per database engine: recognise the backend from /proc (the snapshot), refine its
wait here; a MySQL/MariaDB module would read performance_schema.data_lock_waits and
threads.THREAD_OS_ID (its sessions are threads of one process)."""

from __future__ import annotations


from ..model import DbLock, DbSession, Edge, EdgeKind, End, EndKind, Mode, Reason, Task, Wait
from ..records import replace
from ..snapshot import Snapshot

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import List, Tuple

# The calls a backend's latch wait (or an older server's semaphore wait) is made in.
LATCH_CALLS = {"epoll_wait", "epoll_pwait", "epoll_pwait2", "poll", "ppoll", "select", "pselect6",
               "semop", "semtimedop", "futex"}


def refine(snap: Snapshot, pid: int, task: Task, wait: Wait) -> Wait:
    """The wait of a PostgreSQL client backend as its title tells it; any other wait as it is."""
    if task.syscall is None or task.syscall.name not in LATCH_CALLS or task.state not in ("S", "I"):
        return wait
    session = snap.db_session(pid)
    if session is None:
        return wait
    if session.waiting:
        return _lock_wait(snap, pid, task, wait, session)
    return replace(wait, edges=tuple(_tagged(e, session) for e in wait.edges))


def _tagged(edge: Edge, session: DbSession) -> Edge:
    """An edge to anything but its server (the postmaster's pipe) carries the title's facts."""
    return edge if edge.to_pid == session.server else replace(edge, db=session)


def _lock_wait(snap: Snapshot, pid: int, task: Task, wait: Wait, session: DbSession) -> Wait:
    base = Wait(pid, task.tid, wait.what, syscall=wait.syscall)
    if not snap.ask_db:
        return replace(base, end=_end(pid, session))
    answer = snap.pg_blockers(pid)
    if answer.error:
        return replace(base, end=_end(pid, session, answer.error, answer.command))
    rows = answer.of(pid)
    edges = [_edge(pid, task.tid, b.blocker, b.lock, session, answer.command) for b in rows if b.blocker > 0]
    if edges:
        return replace(base, edges=tuple(edges), mode=Mode.ALL)
    return replace(base, end=_end(pid, session, _no_blocker(pid, [b.blocker for b in rows]),
                                  answer.command))


def _end(pid: int, session: DbSession, unread: str = "", command: Tuple[str, ...] = ()) -> End:
    return End(EndKind.UNKNOWN, reason=Reason.DB_LOCK, subject=f"SELECT pg_blocking_pids({pid})",
               db=session, unread=unread, command=command)


def _no_blocker(pid: int, blockers: List[int]) -> str:
    if 0 in blockers:
        return f"pg_blocking_pids({pid}) names a prepared transaction (0): see pg_prepared_xacts"
    if blockers:
        return f"pg_blocking_pids({pid}) names sessions not scanned (started since?): {blockers}"
    return f"pg_blocking_pids({pid}) names no session: the lock was granted since, or it waits for something else"


def _edge(pid: int, tid: int, blocker: int, lock: DbLock, session: DbSession, command: Tuple[str, ...]) -> Edge:
    return Edge(pid, tid, blocker, None, EdgeKind.PG_LOCK, _object(lock), _evidence(pid, blocker, lock, command),
                db=session, db_lock=lock)


def _object(lock: DbLock) -> str:
    """`tuple (0,1) of t`, `relation t`, `transactionid`."""
    if lock.tuple is not None and lock.relation:
        return f"row ({lock.page},{lock.tuple}) of {lock.relation}"
    if lock.relation:
        return f"{lock.locktype} {lock.relation}" if lock.locktype != "relation" else f"table {lock.relation}"
    return lock.locktype or "lock"


def _evidence(pid: int, blocker: int, lock: DbLock, command: Tuple[str, ...]) -> str:
    held = f"; {blocker} holds {lock.held_mode}" if lock.held_mode else f"; {blocker} is ahead in the queue"
    asked = f"{lock.locktype} {lock.mode}".strip() or "a lock"
    psql = next((c for c in command if c.endswith("psql")), "")
    via = f" (asked with {psql})" if psql else ""
    return f"pg_blocking_pids({pid}) names {blocker}; pg_locks: {pid} waits for {asked}{held}{via}"

