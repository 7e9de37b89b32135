"""--debuginfod (stacks/debuginfod.py): a stripped C program blocked in read, its debug file
(objcopy --only-keep-debug) served by a local HTTP server that counts requests. With the flag
and DEBUGINFOD_URLS its frames get file:line and the file lands in the cache, elfutils' layout;
without the flag, or without DEBUGINFOD_URLS, no request is made and no line is shown; a server
that never answers is cut by the deadline and named in a note."""

from __future__ import annotations

import http.server
import json
import os
import shutil
import socket
import stat
import threading
import time
from pathlib import Path
from typing import Dict, Iterator, List, Tuple

import pytest
from scenario_helpers import threads_of
from test_native_unwind import C_PROGRAM, CC, build, compiled, line_of, start_with_ready_fd

from waitchain.demo.harness import Processes, wait_blocked
from waitchain.stacks import elf, unwind
from waitchain.stacks.debuginfod import Client

pytestmark = [
    pytest.mark.skipif(not unwind.SUPPORTED, reason="native unwinding is x86-64 only"),
    pytest.mark.skipif(CC is None, reason="no C compiler"),
    pytest.mark.skipif(shutil.which("objcopy") is None or shutil.which("strip") is None, reason="no binutils"),
]

LEVELS = ["level3", "level2", "level1", "main"]


class Server:
    """An HTTP server on 127.0.0.1 in a thread: /buildid/{id}/debuginfo → files[id], else 404."""

    def __init__(self, files: Dict[str, bytes]) -> None:
        self.files = files
        self.requests: List[str] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (the http.server name)
                outer.requests.append(self.path)
                parts = self.path.strip("/").split("/")
                body = outer.files.get(parts[1]) if len(parts) == 3 and parts[0] == "buildid" else None
                if body is None or parts[2] != "debuginfo":
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def asked_for(self, build_id: str) -> int:
        return sum(1 for path in self.requests if f"/buildid/{build_id}/" in path)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


@pytest.fixture
def stripped(tmp_path: Path) -> Iterator[Tuple[Path, Path, str, bytes]]:
    """(source, stripped binary, its build-id, its debug file's bytes); no local debug file."""
    source, binary = compiled(tmp_path, "deep", C_PROGRAM, "-Wl,--build-id")
    debug = tmp_path / "deep.debug"
    build(["objcopy", "--only-keep-debug", str(binary), str(debug)])
    build(["strip", "--strip-all", str(binary)])
    build_id = elf.build_id_of(str(binary))
    assert build_id
    data = debug.read_bytes()
    debug.unlink()  # only the server has it
    elf.clear_cache()
    yield source, binary, build_id, data
    elf.clear_cache()


@pytest.fixture
def server(stripped: Tuple[Path, Path, str, bytes]) -> Iterator[Server]:
    served = Server({stripped[2]: stripped[3]})
    yield served
    served.close()


def app_frames(frames: Tuple[object, ...], binary: Path) -> List[Tuple[str, int]]:
    return [(f.function, f.line) for f in frames if f.module == str(binary)][:4]  # type: ignore[attr-defined]


def test_the_debug_file_comes_from_the_server_into_the_cache(tmp_path, stripped, server):
    _, binary, build_id, data = stripped
    cache = tmp_path / "cache"
    with Processes() as procs:
        pid = start_with_ready_fd(procs, [str(binary)])
        wait_blocked(pid, "read")

        bare, _ = unwind.process_stacks(pid, [pid])[pid]
        assert {line for _, line in app_frames(bare, binary)} == {0} and server.requests == []

        client = Client([server.url], str(cache))
        frames, incomplete = unwind.process_stacks(pid, [pid], debuginfod=client)[pid]

        assert not incomplete
        assert app_frames(frames, binary) == [(name, line_of(C_PROGRAM, name.upper())) for name in LEVELS]
        assert server.asked_for(build_id) == 1
        kept = cache / build_id / "debuginfo"
        assert kept.read_bytes() == data
        assert stat.S_IMODE(kept.stat().st_mode) == 0o600
        assert stat.S_IMODE((cache / build_id).stat().st_mode) == 0o700
        assert [p.name for p in (cache / build_id).iterdir()] == ["debuginfo"], "a temporary file left"

        elf.clear_cache()  # a later run: from the cache, no request
        again = Client([server.url], str(cache))
        frames, _ = unwind.process_stacks(pid, [pid], debuginfod=again)[pid]
        assert app_frames(frames, binary)[0] == ("level3", line_of(C_PROGRAM, "LEVEL3"))
        assert server.asked_for(build_id) == 1


def _location(run_cli, pid: int, *flags: str) -> Tuple[Dict[str, object], List[str]]:
    result = run_cli(str(pid), "--json", "-v", *flags)
    data = json.loads(result.out)
    thread = next(t for t in threads_of(data, pid) if t["tid"] == pid)
    return thread, data["notes"]


def test_the_cli_flag_and_the_environment_both_needed(tmp_path, stripped, server, run_cli, monkeypatch):
    source, binary, build_id, _ = stripped
    monkeypatch.setenv("DEBUGINFOD_CACHE_PATH", str(tmp_path / "cache"))
    with Processes() as procs:
        pid = start_with_ready_fd(procs, [str(binary)])
        wait_blocked(pid, "read")

        monkeypatch.setenv("DEBUGINFOD_URLS", server.url)
        thread, _ = _location(run_cli, pid)  # no flag: no network
        assert server.requests == [] and thread["location"] is None, thread

        monkeypatch.delenv("DEBUGINFOD_URLS")
        thread, notes = _location(run_cli, pid, "--debuginfod")  # no server named
        assert server.requests == [] and thread["location"] is None, thread
        assert any("DEBUGINFOD_URLS names no server" in n for n in notes), notes

        monkeypatch.setenv("DEBUGINFOD_URLS", f"http://127.0.0.1:1 {server.url}")  # the first refuses
        thread, notes = _location(run_cli, pid, "--debuginfod")

        assert thread["location"]["function"] == "level3", thread
        assert (thread["location"]["file"], thread["location"]["line"]) == (str(source), line_of(C_PROGRAM, "LEVEL3"))
        assert server.asked_for(build_id) == 1
        assert any(n.startswith("debuginfod: http://127.0.0.1:1:") for n in notes), notes


def test_a_server_that_never_answers_is_cut_by_the_deadline(tmp_path):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)  # accepts connections (the kernel does), never answers
    try:
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        client = Client([url, url + "/again"], str(tmp_path / "cache"), total=1.0, request=30.0)
        start = time.monotonic()
        assert client.debuginfo("ab" * 20) is None
        took = time.monotonic() - start
        assert took < 2.5, took
        assert client.requests == 1, "the second server is not asked past the deadline"
        assert any("timed out" in n for n in client.notes) and any("deadline" in n for n in client.notes), \
            client.notes
        assert not os.path.exists(tmp_path / "cache" / ("ab" * 20) / "debuginfo")
    finally:
        listener.close()


def test_only_http_servers_and_only_build_ids(tmp_path):
    client = Client(["ftp://example.invalid", "file:///etc"], str(tmp_path / "cache"))
    assert client.debuginfo("ab" * 20) is None and client.requests == 0
    assert len(client.notes) == 2 and all("only http and https" in n for n in client.notes)
    assert client.debuginfo("../../etc/passwd") is None and client.requests == 0
    assert Client.from_env({}) is None and Client.from_env({"DEBUGINFOD_URLS": "  "}) is None
    made = Client.from_env({"DEBUGINFOD_URLS": "https://a/ http://b", "DEBUGINFOD_CACHE_PATH": "/c"})
    assert made is not None and made.urls == ["https://a", "http://b"] and made.cache == "/c"
    xdg = Client.from_env({"DEBUGINFOD_URLS": "https://a", "XDG_CACHE_HOME": "/x"})
    assert xdg is not None and xdg.cache == "/x/debuginfod_client"


def test_an_answer_that_is_not_elf_or_too_large_is_not_kept(tmp_path):
    served = Server({"ab" * 20: b"<html>not found</html>", "cd" * 20: b"\x7fELF" + b"\0" * 5000})
    try:
        client = Client([served.url], str(tmp_path / "cache"), max_bytes=4096)
        assert client.debuginfo("ab" * 20) is None
        assert client.debuginfo("cd" * 20) is None
        assert any("not an ELF file" in n for n in client.notes), client.notes
        assert any("larger than" in n for n in client.notes), client.notes
        for build_id in ("ab" * 20, "cd" * 20):
            assert not (tmp_path / "cache" / build_id / "debuginfo").exists()
            assert list((tmp_path / "cache").glob(f"{build_id}/*")) == []
    finally:
        served.close()
