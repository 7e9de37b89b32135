"""Chains through terminals on waits built in code: reached through a pty slave, the
master's holder is followed along its input only (its own terminal, a pipe, a socket),
never back along the master (the output direction) nor to its other terminals; a relay
whose input is a person's terminal ends the chain there."""

from __future__ import annotations

from test_verdict_layer import edge, run, wait

from waitchain import records
from waitchain.model import Advice, EdgeKind, End, EndKind, Pty, PtySide, Reason, VerdictClass
from waitchain.render.ends import detail
from waitchain.waits.ends import live_end

SIGNALFD = End(EndKind.SIGNAL, reason=Reason.SIGNAL_WAIT, fd=5, through="5<anon_inode:[signalfd]>")
TYPED = End(EndKind.TERMINAL, reason=Reason.TERMINAL_INPUT, subject="/dev/pts/0", pty=Pty(PtySide.SLAVE, 0),
            through="0</dev/pts/0>")
SLEEP = End(EndKind.SLEEPING, "sleeps", Reason.SLEEP)


def pty(a, to: int, side: PtySide, index: int):
    return records.replace(edge(a, to, EdgeKind.PTY), pty=Pty(side, index))


def relay(pid: int, *edges, live=(SIGNALFD, TYPED)):
    """script's poll: its signalfd, the master (edges to the programs on the slave), its stdin."""
    return records.replace(wait((pid, pid), *edges, syscall="poll", live=live), any_of=3)


def test_a_program_in_script_waits_for_the_scripts_terminal_not_for_itself() -> None:
    waits = [wait((1, 1), pty((1, 1), 2, PtySide.SLAVE, 1)), relay(2, pty((2, 2), 1, PtySide.MASTER, 1))]
    diag = run(waits, 1)
    (chain,) = diag.chains
    assert chain.path == (1, 2) and chain.end.kind == EndKind.TERMINAL and chain.end.subject == "/dev/pts/0"
    (v,) = diag.verdicts
    assert (v.cls, v.advice, v.cause) == (VerdictClass.CHAIN_END, Advice.TERMINAL, (2, 2))


def test_the_relays_own_terminal_is_followed_its_other_terminals_are_not() -> None:
    """Nested: the inner relay's stdin is a pty slave whose master the outer one holds; the
    outer's master edges (to the inner relay, to a program in another window) are output."""
    waits = [wait((1, 1), pty((1, 1), 2, PtySide.SLAVE, 2)),
             relay(2, pty((2, 2), 1, PtySide.MASTER, 2), pty((2, 2), 3, PtySide.SLAVE, 1), live=(SIGNALFD,)),
             relay(3, pty((3, 3), 2, PtySide.MASTER, 1), pty((3, 3), 4, PtySide.MASTER, 7)),
             wait((4, 4), end=SLEEP)]
    (chain,) = run(waits, 1).chains
    assert chain.path == (1, 2, 3) and chain.end.kind == EndKind.TERMINAL and chain.end.pid == 3


def test_the_relays_input_pipe_is_followed() -> None:
    waits = [wait((1, 1), pty((1, 1), 2, PtySide.SLAVE, 1)),
             relay(2, pty((2, 2), 1, PtySide.MASTER, 1), edge((2, 2), 3), live=(SIGNALFD,)),
             wait((3, 3), end=SLEEP)]
    (chain,) = run(waits, 1).chains
    assert chain.path == (1, 2, 3) and chain.end.kind == EndKind.SLEEPING


def test_a_relay_waiting_for_typing_and_signals_ends_at_the_terminal() -> None:
    end = live_end(3, (SIGNALFD, TYPED))
    assert (end.kind, end.reason, end.subject) == (EndKind.TERMINAL, Reason.TERMINAL_INPUT, "/dev/pts/0")
    assert detail(end) == ("fd 0</dev/pts/0>: waits for someone to type at /dev/pts/0 (no scanned process "
                           "holds its master: no /dev/ptmx fd with tty-index: 0); it also watches "
                           "fd 5<anon_inode:[signalfd]>: waits for a signal through signalfd 5")
    listener = End(EndKind.IDLE, reason=Reason.ACCEPT, subject="3<UNIX:[9] /tmp/s>", through="3<UNIX:[9] /tmp/s>")
    assert live_end(3, (TYPED, listener)).reason == Reason.ACCEPT  # a server's loop stays a server's
