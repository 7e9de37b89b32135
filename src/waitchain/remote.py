"""Other hosts: `--socket` starts at the process holding a TCP connection; `--remote`
follows a chain that ends at a TCP peer on another host by running waitchain there (a
command template, ssh by default) with `--socket` for that connection, and stitches the
chain it reports into ours, host by host, under an overall deadline and a number of hosts.

The template is split into words like a shell would (shlex; no shell runs it); `{host}` in
any word becomes the peer's address (or its name from --remote-host ADDR=NAME); waitchain's
own arguments are appended. The remote side's JSON (waitchain/1) is read for its chains;
its sentences are carried as it wrote them, never parsed."""

from __future__ import annotations

import argparse
import os
import re
import time

from .errors import EXIT_NO_PROCESS, UsageError, WaitchainError
from .model import Across, Diagnosis, Hop, RemoteHost

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional, Tuple

    Endpoint = Tuple[str, int]
    Json = Dict[str, Any]

DEFAULT_CMD = "ssh -o BatchMode=yes -o ConnectTimeout=5 {host} waitchain"
DEFAULT_MAX_HOSTS = 4
DEFAULT_TIMEOUT = 60.0

_SPEC = r"(\[[^\]]+\]|[^:\[\]]+):(\d+)-(\[[^\]]+\]|[^:\[\]]+):(\d+)"  # compiled on use: --socket only


class NoConnection(WaitchainError, LookupError):
    """--socket names a connection no process on this host holds."""

    exit_code = EXIT_NO_PROCESS

    def __init__(self, spec: str) -> None:
        self.spec = spec
        super().__init__(f"no process on this host holds the TCP connection {spec}")

    def fixes(self) -> List[str]:
        return ["fix: `ss -tnp` lists the connections and who holds them; give it as this host sees it, "
                "its own address first: LOCALADDR:PORT-REMOTEADDR:PORT"]


def add_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("other hosts")
    g.add_argument("--socket", type=socket_spec, metavar="LOCALADDR:PORT-REMOTEADDR:PORT",
                   help="start at the process holding this TCP connection (as this host sees it: its own "
                   "address first; IPv6 in brackets): who holds it and what is it waiting for?")
    g.add_argument("--remote", action="store_true",
                   help="when a chain ends at a TCP peer on another host, run waitchain there (--remote-cmd) "
                   "for that connection and stitch its chain into this one, host by host")
    g.add_argument("--remote-cmd", default=DEFAULT_CMD, metavar="TEMPLATE",
                   help="the command that runs waitchain on a peer, split like a shell would (no shell runs "
                   "it); {host} is the peer's address or --remote-host name, waitchain's arguments are "
                   f"appended (default: {DEFAULT_CMD!r}; e.g. 'kubectl exec {{host}} -- waitchain')")
    g.add_argument("--remote-host", action="append", default=[], type=host_alias, metavar="ADDR=NAME",
                   help="the name {host} becomes for a peer address (an ssh alias, a pod); may be repeated")
    g.add_argument("--max-hosts", type=_positive, default=DEFAULT_MAX_HOSTS, metavar="N",
                   help=f"ask at most N other hosts (default {DEFAULT_MAX_HOSTS})")
    g.add_argument("--remote-timeout", type=_seconds, default=DEFAULT_TIMEOUT, metavar="SECONDS",
                   help=f"the deadline for all remote hosts together (default {DEFAULT_TIMEOUT:g})")


def check(args: argparse.Namespace) -> None:
    """Remote options that contradict the others: an error, never ignored."""
    if args.remote and args.all:
        raise UsageError("--remote follows the chains of given processes; --all is not supported with it",
                         "collect `waitchain --all --json` on each host and use `waitchain merge`")
    given = [name for name, on in (("--remote-host", bool(args.remote_host)),
                                   ("--max-hosts", args.max_hosts != DEFAULT_MAX_HOSTS),
                                   ("--remote-timeout", args.remote_timeout != DEFAULT_TIMEOUT),
                                   ("--remote-cmd", args.remote_cmd != DEFAULT_CMD)) if on]
    if given and not args.remote:
        raise UsageError(f"{given[0]} applies to --remote, and --remote is not given", "add --remote")


def _positive(value: str) -> int:
    if not value.strip().isdigit() or int(value) <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, not {value!r}")
    return int(value)


def _seconds(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {value!r}") from None
    if not number > 0 or number != number or number == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, not {value!r}")
    return number


def _address(text: str) -> str:
    """An IP address as /proc/net/tcp gives it (IPv4-mapped IPv6 as IPv4)."""
    import ipaddress  # only for an address given on the command line: ~1.6 ms to import

    addr = ipaddress.ip_address(text.strip("[]"))
    mapped = getattr(addr, "ipv4_mapped", None)
    return str(mapped if mapped is not None else addr)


def socket_spec(value: str) -> Tuple[Endpoint, Endpoint]:
    """`10.0.0.2:8080-10.0.0.1:41234` or `[::1]:80-[::1]:5000`: (local, remote)."""
    m = re.fullmatch(_SPEC, value.strip())
    try:
        if m is None:
            raise ValueError
        ports = int(m.group(2)), int(m.group(4))
        if not all(0 < port < 65536 for port in ports):
            raise ValueError
        return (_address(m.group(1)), ports[0]), (_address(m.group(3)), ports[1])
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a TCP connection: {value!r} (LOCALADDR:PORT-REMOTEADDR:PORT, IP addresses, IPv6 in "
            "brackets: 10.0.0.2:8080-10.0.0.1:41234)") from None


def host_alias(value: str) -> Tuple[str, str]:
    addr, sep, name = value.partition("=")
    try:
        if not sep or not name.strip():
            raise ValueError
        return _address(addr), name.strip()
    except ValueError:
        raise argparse.ArgumentTypeError(f"not ADDR=NAME: {value!r} (10.0.0.2=db1)") from None


def endpoint_text(ep: Endpoint) -> str:
    host, port = ep
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def spec_text(local: Endpoint, remote: Endpoint) -> str:
    return f"{endpoint_text(local)}-{endpoint_text(remote)}"


def socket_starts(snap: Any, spec: Tuple[Endpoint, Endpoint]) -> List[int]:
    """The processes that hold the connection (a note when only NAT-tolerant matching found it)."""
    pids, loose = snap.tcp_holders(*spec)
    if not pids:
        raise NoConnection(spec_text(*spec))
    if loose:
        snap.note(f"the connection {spec_text(*spec)} was found by its ports and remote address: this host "
                  "knows its own end by another address (NAT, a published port)")
    return pids


def command(template: str, host: str, args: List[str]) -> List[str]:
    """The template's words with {host} replaced in each, and waitchain's arguments."""
    import shlex  # only --remote needs it: ~1.6 ms to import

    try:
        words = shlex.split(template)
    except ValueError as exc:
        raise UsageError(f"--remote-cmd cannot be split into words: {exc}", "check its quotes") from None
    if not words:
        raise UsageError("--remote-cmd is empty", f"give a command, e.g. {DEFAULT_CMD!r}")
    return [w.replace("{host}", host) for w in words] + args


# --- following a chain host by host ---------------------------------------------------------


class Follower:
    """Follows the chains of a diagnosis that end at remote TCP peers (diag.across,
    diag.remote_hosts). `known` answers a connection without asking any host: (its host,
    JSON as waitchain --socket gives it) when a process of a known document holds it (this
    host's, for a chain that comes back; the documents merged), else None. With no
    template (merge), a connection nobody known holds ends the chain."""

    def __init__(self, args: Optional[argparse.Namespace], here: str, known: Any) -> None:
        self.template: str = args.remote_cmd if args is not None else ""
        self.aliases: Dict[str, str] = dict(args.remote_host) if args is not None else {}
        self.max_hosts: int = args.max_hosts if args is not None else 0
        self.deadline = time.monotonic() + (args.remote_timeout if args is not None else 0.0)
        self.extra = ["--no-stacks"] if getattr(args, "no_stacks", False) else []
        self.here = here
        self.known = known
        self.asked: Dict[str, RemoteHost] = {}  # spec → what the host said
        self.docs: Dict[str, Tuple[str, Optional[Json]]] = {}  # spec → (host, its JSON)

    def follow(self, diag: Diagnosis, doc: Json, host: Optional[str] = None) -> None:
        for chain in doc.get("chains", []):
            end = chain.get("end") or {} if isinstance(chain, dict) else {}
            if isinstance(end, dict) and end.get("kind") == "remote" and end.get("local") and end.get("remote"):
                where = self.here if host is None else host
                try:
                    diag.across.append(self._walk(doc, where, chain))
                except (KeyError, TypeError, ValueError, AttributeError) as exc:  # a document not as waitchain/1 says
                    diag.across.append(Across((), dict(end, host=where, error=f"a document could not be read: "
                                                   f"{type(exc).__name__} {exc}", command=[])))
        diag.remote_hosts.extend(r for r in self.asked.values() if r not in diag.remote_hosts)

    def _walk(self, doc: Json, host: str, chain: Json) -> Across:
        hops = hops_of(doc, host, chain)
        waits = [_waits_alone(doc, h) for h in hops]
        end: Json = dict(chain["end"], host=host)
        while end.get("kind") == "remote" and end.get("local") and end.get("remote"):
            mine, peer = _ep(end["local"]), _ep(end["remote"])
            spec = spec_text(peer, mine)  # as the peer sees it: its own end first
            found = self._ask(spec, peer[0])
            if found is None:
                return Across(tuple(hops), dict(end, error=self._why(spec), command=self._command(spec)))
            there, rdoc = found
            starts = set(rdoc.get("starts", []))
            chains = [c for c in rdoc.get("chains", []) if c.get("start") in starts and c.get("path")]
            if not chains:
                return Across(tuple(hops), dict(end, error="it found no chain from the connection's holder",
                                                command=self._command(spec)))
            nxt = chains[0]
            new = hops_of(rdoc, there, nxt, crossing=(mine, peer))
            for i, hop in enumerate(new):
                seen = [k for k, h in enumerate(hops) if (h.host, h.pid) == (hop.host, hop.pid)]
                if seen:
                    ring = seen[0]
                    alone = all(waits[ring:]) and all(_waits_alone(rdoc, h) for h in new[:i])
                    hops += new[:i]
                    cycle = {"kind": "cycle", "host": hop.host, "pid": hop.pid, "tid": hop.tid}
                    return Across(tuple(hops + [hop]), cycle, deadlock=alone, ring=ring)
            hops += new
            waits += [_waits_alone(rdoc, h) for h in new]
            end = dict(nxt["end"], host=(nxt["end"].get("host") or there))
        return Across(tuple(hops), end)

    def _ask(self, spec: str, address: str) -> Optional[Tuple[str, Json]]:
        if spec in self.docs:
            host, doc = self.docs[spec]
            return (host, doc) if doc is not None else None
        known = self.known(spec)
        if known is not None:
            self.docs[spec] = known
            return known
        if not self.template:
            self.docs[spec] = ("", None)
            return None
        name = self.aliases.get(address, address)
        argv = command(self.template, name, ["--socket", spec, "--json", *self.extra])
        left = self.deadline - time.monotonic()
        started = time.monotonic()
        if len({h.address for h in self.asked.values()} | {address}) > self.max_hosts:
            result = RemoteHost(address, "", tuple(argv), f"not asked: --max-hosts {self.max_hosts} reached")
        elif left <= 0:
            result = RemoteHost(address, "", tuple(argv), "not asked: the --remote-timeout deadline has passed")
        else:
            result = run(address, argv, left)
        result = RemoteHost(result.address, result.host, result.command, result.error,
                            round(time.monotonic() - started, 3), result.document)
        self.asked[spec] = result
        doc = result.document if not result.error else None
        self.docs[spec] = (result.host, doc)
        return (result.host, doc) if doc is not None else None

    def _why(self, spec: str) -> str:
        found = self.asked.get(spec)
        return found.error if found is not None else "no document holds the other end of the connection"

    def _command(self, spec: str) -> List[str]:
        found = self.asked.get(spec)
        return list(found.command) if found is not None else []


def run(address: str, argv: List[str], timeout: float) -> RemoteHost:
    """Run the command (no shell, no terminal: ssh cannot prompt) and read its JSON."""
    import json  # json and subprocess only when a remote host is asked: not on every run
    import subprocess

    env = dict(os.environ, SSH_ASKPASS_REQUIRE="never")
    env.pop("DISPLAY", None)
    try:
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              timeout=timeout, start_new_session=True, env=env)
    except FileNotFoundError:
        return RemoteHost(address, "", tuple(argv), f"{argv[0]} is not installed here")
    except subprocess.TimeoutExpired:
        return RemoteHost(address, "", tuple(argv), f"no answer within {timeout:.1f} s (--remote-timeout)")
    except OSError as exc:
        return RemoteHost(address, "", tuple(argv), f"{argv[0]} could not be run: {exc.strerror or exc}")
    said = _last_line(done.stderr)
    try:
        doc = json.loads(done.stdout.decode("utf-8", "replace")) if done.stdout.strip() else None
    except ValueError:
        doc = None
    if not isinstance(doc, dict) or doc.get("schema") != "waitchain/1":
        why = f"exit status {done.returncode}" + (f": {said}" if said else "") if done.returncode else \
            "its output is not waitchain/1 JSON"
        if done.returncode in (126, 127) or "command not found" in said or "not found" in said:
            why = f"waitchain is not installed there (exit status {done.returncode}" + (f": {said})" if said else ")")
        elif done.returncode == 255 and argv[0].endswith("ssh"):
            why = "ssh could not connect or log in (exit status 255" + (f": {said})" if said else ")")
        return RemoteHost(address, "", tuple(argv), why)
    return RemoteHost(address, _doc_host(doc), tuple(argv), "", document=doc)


def _last_line(data: bytes) -> str:
    lines = [ln.strip() for ln in data.decode("utf-8", "replace").splitlines() if ln.strip()]
    text = lines[-1] if lines else ""
    return "".join(ch if ch.isprintable() else "?" for ch in text)[:300]


def _doc_host(doc: Json) -> str:
    procs = {p.get("pid"): p for p in doc.get("processes", []) if isinstance(p, dict)}
    for pid in doc.get("starts", []):
        if procs.get(pid, {}).get("host"):
            return str(procs[pid]["host"])
    return ""


def _ep(addr: Json) -> Endpoint:
    return str(addr["host"]), int(addr["port"])


def hops_of(doc: Json, host: str, chain: Json, crossing: Optional[Tuple[Endpoint, Endpoint]] = None) -> List[Hop]:
    """The chain's processes as hops of `host`, with the thread that waits for the next and
    how the document worded that edge; the first is reached over `crossing` when given."""
    procs = {p["pid"]: p for p in doc.get("processes", []) if isinstance(p, dict) and "pid" in p}
    edges = doc.get("edges", [])
    path = list(chain.get("path", []))
    out: List[Hop] = []
    label = ""
    for i, pid in enumerate(path):
        nxt = path[i + 1] if i + 1 < len(path) else None
        edge = next((e for e in edges if e["from"]["pid"] == pid and e["to"]["pid"] == nxt), None)
        tid = edge["from"]["tid"] if edge else (chain.get("end", {}).get("tid") if nxt is None else None)
        proc = procs.get(pid, {})
        thread = next((t for t in proc.get("threads", []) if t.get("tid") == tid), None)
        local, remote = (crossing if i == 0 and crossing else (None, None))
        out.append(Hop(host=host or str(proc.get("host") or ""), pid=pid, tid=tid,
                       cmdline=str(proc.get("cmdline") or proc.get("comm") or ""),
                       call=str(thread.get("waits") or "") if thread else "", label=label,
                       local=local, remote=remote))
        label = str(edge.get("label") or "") if edge else ""
    return out


def _waits_alone(doc: Json, hop: Hop) -> bool:
    """The hop's thread waits for one thing only (no OR wait with other fds that may still
    fire): only such waits make a ring across hosts a deadlock."""
    procs = {p["pid"]: p for p in doc.get("processes", []) if isinstance(p, dict) and "pid" in p}
    thread = next((t for t in procs.get(hop.pid, {}).get("threads", []) if t.get("tid") == hop.tid), None)
    return thread is not None and not thread.get("any_of") and not thread.get("live")


def follow(diag: Diagnosis, snap: Any, args: argparse.Namespace) -> None:
    """--remote: fills diag.across and diag.remote_hosts."""
    from .engine import diagnose
    from .render.json import to_dict

    here = snap.hostname()

    def local(spec: str) -> Optional[Tuple[str, Json]]:
        pids, _loose = snap.tcp_holders(*socket_spec(spec))
        return (here, to_dict(diagnose(snap, pids))) if pids else None

    Follower(args, here, local).follow(diag, to_dict(diag))
