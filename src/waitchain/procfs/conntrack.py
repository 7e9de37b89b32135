"""/proc/PID/net/nf_conntrack: the connections netfilter tracks in a network namespace, with
the addresses NAT gave them (a published container port: the client's connection to the
host's port is the container's connection from the host). Read only when a TCP peer is not
found on this host by its reversed 4-tuple."""

from __future__ import annotations

import ipaddress

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Dict, Optional, Tuple

    Endpoint = Tuple[str, int]
    Pair = Tuple[Endpoint, Endpoint]  # a socket's (local, remote)


def _ip(text: str) -> str:
    addr = ipaddress.ip_address(text)
    mapped = getattr(addr, "ipv4_mapped", None)
    return str(mapped if mapped is not None else addr)


def _tuple(fields: Dict[str, str]) -> Optional[Pair]:
    try:
        return (_ip(fields["src"]), int(fields["sport"])), (_ip(fields["dst"]), int(fields["dport"]))
    except (KeyError, ValueError):
        return None


def parse_conntrack(text: str) -> Dict[Pair, Pair]:
    """socket (local, remote) → its peer socket's (local, remote), for every tracked TCP
    connection whose reply tuple is not the reverse of its original one (NAT rewrote it):
    the client's (src, dst) has the peer (reply src, reply dst), and the other way round."""
    peers: Dict[Pair, Pair] = {}
    for line in text.splitlines():
        words = line.split()
        if "tcp" not in words[:4]:
            continue
        tuples = []
        current: Dict[str, str] = {}
        for word in words:
            key, sep, value = word.partition("=")
            if not sep or key not in ("src", "dst", "sport", "dport"):
                continue
            if key in current:  # the second tuple (the reply) begins
                tuples.append(current)
                current = {}
            current[key] = value
        tuples.append(current)
        if len(tuples) < 2:
            continue
        orig, reply = _tuple(tuples[0]), _tuple(tuples[1])
        if orig is None or reply is None or (reply[0], reply[1]) == (orig[1], orig[0]):
            continue  # untranslated: the reversed 4-tuple finds the peer
        peers[orig] = reply
        peers[reply] = orig
    return peers
