"""An end's detail: the sentence for people on where a wait ends, made from its facts
("sleeps in clock_nanosleep for 16.7 min", "waits for a client on 5<TCP ...>"). Every
format words an end here, and only here; the JSON carries it as `detail`. Ends whose
sentence a rule still writes itself (kernel waits, calls not followed) carry it in
`End.detail`, shown as it is."""

from __future__ import annotations

from typing import Callable, Dict

from ..model import ChainEnd, End, Reason

SHOWN = 4  # live alternatives named in an OR wait's detail


def detail(end: End) -> str:
    """The end's sentence (not escaped: callers clean it like any untrusted text)."""
    text = _sentence(end)
    return f"fd {end.through}: {text}" if end.through else text


def chain_detail(end: ChainEnd) -> str:
    """The sentence of the wait a chain ends at (a cycle's or a cut's is common.end_detail's)."""
    return detail(end.ending) if end.ending is not None else end.detail


def _sentence(end: End) -> str:
    if end.alternatives:
        return _any_of(end)
    if end.detail:
        return end.detail
    worded = SENTENCES.get(end.reason)
    return worded(end) if worded is not None else ""


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


def _any_of(end: End) -> str:
    live = end.alternatives
    details = "; ".join(detail(e) for e in live[:SHOWN])
    more = f"; … {len(live) - SHOWN} more" if len(live) > SHOWN else ""
    return (f"waits for any of {_plural(end.any_of, 'fd')}; none leads to a blocked process: "
            f"{details}{more}")


SENTENCES: Dict[Reason, Callable[[End], str]] = {
}
