"""Debug info from debuginfod servers, only with --debuginfod and only when the user set
DEBUGINFOD_URLS: a mapped file with a build-id and no local debug file gets its debug file
from GET {url}/buildid/{hex}/debuginfo, tried on each space-separated server in turn (http
and https only), each request under a short timeout and all of them under one deadline,
no larger than elf.MAX_DEBUG_BYTES. The file is kept where elfutils keeps it
($DEBUGINFOD_CACHE_PATH, else $XDG_CACHE_HOME/debuginfod_client, else
~/.cache/debuginfod_client; then {hex}/debuginfo), directories 0700 and files 0600, written to
a temporary file and renamed: a later run (and gdb, eu-stack) finds it there without the
network. A server that fails is a note, never an error. Without the flag nothing here runs."""

from __future__ import annotations

import os
import re
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, List, Mapping, Optional

REQUEST_SECONDS = 5.0  # one request: connect, and each read of its answer
TOTAL_SECONDS = 15.0  # every request of a run
MAX_BYTES = 256 << 20  # a debug file larger than this is not downloaded (elf.MAX_DEBUG_BYTES)
MISS_SECONDS = 600  # an elfutils negative-cache entry (an empty file) younger than this: no request
CHUNK = 1 << 16
BUILD_ID = re.compile(r"^[0-9a-f]{4,128}$")


class _HttpOnly(urllib.request.HTTPRedirectHandler):
    """Redirects to http(s) only (urllib would follow one to ftp)."""

    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> Any:
        if urllib.parse.urlsplit(newurl).scheme not in ("http", "https"):
            raise urllib.error.HTTPError(newurl, code, "redirect to another scheme than http(s)", headers, fp)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


class Client:
    """The servers and cache of one run; thread-safe (processes are unwound in parallel).
    `notes` collects what went wrong, one line per server and kind of failure."""

    def __init__(self, urls: List[str], cache: str, total: float = TOTAL_SECONDS,
                 request: float = REQUEST_SECONDS, max_bytes: int = MAX_BYTES) -> None:
        self.urls = urls
        self.cache = cache
        self.request = request
        self.max_bytes = max_bytes
        self.notes: List[str] = []
        self.requests = 0
        self.total = total
        self._deadline: Optional[float] = None  # starts with the first request
        self._lock = threading.Lock()
        self._gates: Dict[str, threading.Lock] = {}
        self._done: Dict[str, Optional[str]] = {}  # build-id → path, or None: asked this run
        self._opener = urllib.request.build_opener(_HttpOnly())

    @classmethod
    def from_env(cls, env: Optional[Mapping[str, str]] = None) -> Optional["Client"]:
        """A client for the servers in DEBUGINFOD_URLS, or None when it names none."""
        env = os.environ if env is None else env
        urls = [u.rstrip("/") for u in env.get("DEBUGINFOD_URLS", "").split() if u]
        if not urls:
            return None
        return cls(urls, cache_dir(env))

    def _note(self, text: str) -> None:
        with self._lock:
            if text not in self.notes:
                self.notes.append(text)

    def debuginfo(self, build_id: str) -> Optional[str]:
        """The path of the debug file of `build_id`: from the cache, else downloaded into it;
        None when no server has it (in time)."""
        build_id = build_id.lower()
        if not BUILD_ID.match(build_id):
            return None
        with self._lock:
            gate = self._gates.setdefault(build_id, threading.Lock())
        with gate:  # one download of a file; the other threads wait for it
            if build_id not in self._done:
                self._done[build_id] = self._find(build_id)
            return self._done[build_id]

    def _find(self, build_id: str) -> Optional[str]:
        directory = os.path.join(self.cache, build_id)
        path = os.path.join(directory, "debuginfo")
        try:
            st = os.stat(path)
            if st.st_size > 0:
                return path
            if time.time() - st.st_mtime < MISS_SECONDS:
                return None  # elfutils asked the servers a moment ago and none had it
        except OSError:
            pass
        for url in self.urls:
            scheme = urllib.parse.urlsplit(url).scheme
            if scheme not in ("http", "https"):
                self._note(f"debuginfod: {url} skipped (only http and https servers are asked)")
                continue
            if self._left() <= 0:
                self._note(f"debuginfod: no debug info fetched past {self.total:g} s (the deadline)")
                return None
            if self._download(f"{url}/buildid/{build_id}/debuginfo", url, directory, path):
                return path
        return None

    def _left(self) -> float:
        with self._lock:
            if self._deadline is None:
                self._deadline = time.monotonic() + self.total
            return self._deadline - time.monotonic()

    def _download(self, address: str, server: str, directory: str, path: str) -> bool:
        """GET address into path (atomically); False when the server has no such file or
        fails (a note, except for 404: a server lacks most files)."""
        with self._lock:
            self.requests += 1
        tmp = ""
        try:
            timeout = max(0.1, min(self.request, self._left()))
            request = urllib.request.Request(address, headers={"User-Agent": "waitchain"})
            with self._opener.open(request, timeout=timeout) as answer:
                length = answer.headers.get("Content-Length")
                if length is not None and length.isdigit() and int(length) > self.max_bytes:
                    self._note(f"debuginfod: {server}: a debug file larger than {self.max_bytes >> 20} MiB "
                               "not fetched")
                    return False
                os.makedirs(directory, mode=0o700, exist_ok=True)
                fd, tmp = tempfile.mkstemp(prefix=".debuginfo.", dir=directory)  # mode 0600
                size = 0
                with os.fdopen(fd, "wb") as out:
                    first = b""
                    while True:
                        if self._left() <= 0:
                            self._note(f"debuginfod: {server}: cut at the deadline ({self.total:g} s)")
                            return False
                        chunk = answer.read(CHUNK)
                        if not chunk:
                            break
                        if not first:
                            first = chunk[:4]
                        size += len(chunk)
                        if size > self.max_bytes:
                            self._note(f"debuginfod: {server}: a debug file larger than "
                                       f"{self.max_bytes >> 20} MiB not fetched")
                            return False
                        out.write(chunk)
                if first != b"\x7fELF":
                    self._note(f"debuginfod: {server}: the answer is not an ELF file")
                    return False
                os.rename(tmp, path)
                tmp = ""
                return True
        except urllib.error.HTTPError as exc:
            if exc.code != 404:
                self._note(f"debuginfod: {server}: HTTP {exc.code} {exc.reason}")
            return False
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", None) or exc
            self._note(f"debuginfod: {server}: {reason}")
            return False
        except Exception as exc:  # http.client's own errors (a bad status line, ...)
            self._note(f"debuginfod: {server}: {type(exc).__name__}: {exc}")
            return False
        finally:
            if tmp:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass


def cache_dir(env: Optional[Mapping[str, str]] = None) -> str:
    """Where elfutils' client keeps what it fetched."""
    env = os.environ if env is None else env
    if env.get("DEBUGINFOD_CACHE_PATH"):
        return env["DEBUGINFOD_CACHE_PATH"]
    xdg = env.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(xdg, "debuginfod_client")
