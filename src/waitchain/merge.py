"""`waitchain merge A.json B.json ...`: stitch documents collected separately on each host
(`waitchain --all --json`, run by the tools a fleet already has: ssh loops, Ansible, Salt,
kubectl exec) by matching TCP 4-tuples: a chain that ends at a TCP peer on another host goes
on in the document of the host whose process holds the other end of that connection (each
process lists its connections to other hosts, `tcp`). The result is a waitchain/1 document
whose `across` holds the chains that cross hosts (and `remote` the documents merged); a ring
of waits across hosts is a deadlock: exit 1."""

from __future__ import annotations

import argparse
import json
import sys

from .errors import EXIT_DEADLOCK, EXIT_OK, UsageError, WaitchainError
from .model import Diagnosis, RemoteHost
from .remote import Follower, endpoint_text, socket_spec

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional, Tuple

    Json = Dict[str, Any]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="waitchain merge", description="Stitch waitchain --all --json documents of several hosts by "
        "their TCP connections: chains across hosts and distributed deadlocks.")
    p.add_argument("documents", nargs="+", metavar="FILE.json", help="waitchain/1 JSON, one per host ('-': stdin)")
    p.add_argument("--json", action="store_true", help="print JSON (waitchain/1, with 'across' and 'remote')")
    return p


def load(path: str) -> Json:
    try:
        if path == "-":
            text = sys.stdin.read()
        else:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        doc = json.loads(text)
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}", "give the files waitchain --all --json wrote")
    except ValueError as exc:
        raise UsageError(f"{path} is not JSON: {exc}", "give the files waitchain --all --json wrote") from None
    if not isinstance(doc, dict) or doc.get("schema") != "waitchain/1" or not isinstance(doc.get("processes"), list):
        raise UsageError(f"{path} is not a waitchain/1 document", "give the files waitchain --all --json wrote")
    return doc


def host_of(doc: Json, path: str) -> str:
    """The host a document is from: the name its processes report (the file's name when none)."""
    names = [p.get("host") for p in doc["processes"] if isinstance(p, dict) and p.get("host")]
    return str(names[0]) if names else path


class Index:
    """Who holds which connection, over all the documents."""

    def __init__(self, docs: List[Tuple[str, Json]]) -> None:
        self.holders: Dict[Tuple[Tuple[str, int], Tuple[str, int]], List[Tuple[str, Json, int]]] = {}
        for host, doc in docs:
            for proc in doc["processes"]:
                if not isinstance(proc, dict) or not isinstance(proc.get("tcp"), list):
                    continue
                for conn in proc["tcp"]:
                    try:
                        key = ((str(conn["local"]["host"]), int(conn["local"]["port"])),
                               (str(conn["remote"]["host"]), int(conn["remote"]["port"])))
                    except (KeyError, TypeError, ValueError):
                        continue
                    self.holders.setdefault(key, []).append((host, doc, proc["pid"]))

    def answer(self, spec: str) -> Optional[Tuple[str, Json]]:
        """The document part that starts at the holder of the connection (as its host sees
        it), shaped as waitchain --socket would give it."""
        for host, doc, pid in self.holders.get(socket_spec(spec), []):
            chains = []
            for chain in doc.get("chains", []):
                path = list(chain.get("path", [])) if isinstance(chain, dict) else []
                if pid in path:
                    chains.append(dict(chain, start=pid, path=path[path.index(pid):]))
            if not chains:  # it waits for nothing the document followed
                chains = [{"start": pid, "path": [pid], "end": {"kind": "unknown", "detail": "its document has "
                           "no chain from it", "pid": pid, "tid": None, "reason": "other", "subject": "",
                           "host": host, "local": None, "remote": None}}]
            return host, dict(doc, starts=[pid], chains=chains[:1])
        return None


def merge(paths: List[str]) -> Diagnosis:
    docs = [(host_of(doc, path), doc) for path, doc in ((p, load(p)) for p in paths)]
    index = Index(docs)
    diag = Diagnosis(starts=[], processes={}, tasks={}, cmdlines={}, waits={}, edges=[], chains=[], cycles=[],
                     root_cause=None)
    for host, doc in docs:
        Follower(None, host, index.answer).follow(diag, doc, host)
        diag.remote_hosts.append(RemoteHost("", host, (), document=doc))
    seen = set()
    kept = []
    for a in diag.across:  # a ring is found from each of its members: once
        key = frozenset((h.host, h.pid) for h in a.path[a.ring:]) if a.ring is not None else \
            tuple((h.host, h.pid) for h in a.path)
        if key not in seen:
            seen.add(key)
            kept.append(a)
    diag.across = kept
    return diag


def main(argv: List[str]) -> int:
    args = parser().parse_args(argv)
    diag = merge(args.documents)
    if args.json:
        from .render.json import to_dict

        out = to_dict(diag)
        sys.stdout.write(json.dumps(out, indent=2, ensure_ascii=True) + "\n")
    else:
        from .render.hosts import lines
        from .sanitize import clean

        text = lines(diag)[1:] or [f"no chain crosses hosts in {len(args.documents)} documents "
                                   f"({', '.join(clean(r.host) for r in diag.remote_hosts)})"]
        sys.stdout.write("\n".join(text) + "\n")
    return EXIT_DEADLOCK if diag.deadlocked else EXIT_OK


__all__ = ["main", "merge", "endpoint_text", "WaitchainError"]
