"""Chains that cross hosts (--remote): the JSON of each crossing chain and of each host
asked, and the text section that shows where a chain goes on to another host. The remote
hosts' own sentences (their edge labels, their chain end) are shown as they wrote them."""

from __future__ import annotations


from ..model import Across, Diagnosis, Hop, RemoteHost
from ..sanitize import clean
from ..names import program

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional, Tuple

    Json = Dict[str, Any]


def across_json(a: Across) -> Json:
    return {"path": [_hop(h) for h in a.path], "end": a.end, "deadlock": a.deadlock, "ring": a.ring}


def _hop(h: Hop) -> Json:
    return {"host": h.host or None, "pid": h.pid, "tid": h.tid, "cmdline": h.cmdline, "waits": h.call or None,
            "label": h.label or None, "local": _address(h.local), "remote": _address(h.remote)}


def remote_json(r: RemoteHost) -> Json:
    return {"address": r.address, "host": r.host or None, "command": list(r.command), "error": r.error or None,
            "seconds": r.seconds, "document": r.document}


def _address(addr: Optional[Tuple[str, int]]) -> Optional[Json]:
    return {"host": addr[0], "port": addr[1]} if addr is not None else None


def _endpoint(addr: Tuple[str, int]) -> str:
    return f"[{addr[0]}]:{addr[1]}" if ":" in addr[0] else f"{addr[0]}:{addr[1]}"


def lines(diag: Diagnosis) -> List[str]:
    """The text section: each crossing chain, one line per process, with its host."""
    if not diag.across:
        return []
    out = ["", "across hosts:"]
    for a in diag.across:
        width = max((len(clean(h.host or "?")) for h in a.path), default=1)
        for i, hop in enumerate(a.path):
            if i and hop.local is not None and hop.remote is not None:
                out.append(f"  ⇢ over TCP {_endpoint(hop.local)} → {_endpoint(hop.remote)}, on to {clean(hop.host)}")
            elif i and hop.label:
                out.append(f"  ↓ {clean(hop.label)}")
            name = clean(program(hop.cmdline)) if hop.cmdline else "?"
            call = f"  {clean(hop.call)}" if hop.call else ""
            out.append(f"  {clean(hop.host or '?'):<{width}}  {hop.pid} {name}{call}")
        out += _end_lines(a)
    return out


def _end_lines(a: Across) -> List[str]:
    end = a.end
    if a.ring is not None:
        back = a.path[a.ring]
        what = "DEADLOCK across hosts" if a.deadlock else "a cycle across hosts (a member waits for more than " \
            "this connection: it may still go on)"
        return [f"  ↺ back to {clean(back.host)} {back.pid}: {what}"]
    detail = clean(str(end.get("detail") or end.get("kind") or "?"))
    line = [f"  END {clean(str(end.get('kind', '?')))} on {clean(str(end.get('host') or '?'))}: {detail}"]
    if end.get("error"):
        words = end.get("command")
        command = " ".join(str(w) for w in words) if isinstance(words, list) else ""
        line.append(f"  could not go on there: {clean(str(end['error']))}" + (f" (command: {clean(command)})" if command else ""))
    return line
