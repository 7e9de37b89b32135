"""The application-frame rule, Python-level wait labels, the stack parsers, TID matching."""

from __future__ import annotations

import json
import os
import threading

import pytest

from waitchain.model import Frame
from waitchain.stacks import frames, labels, native, python, tidmap


def py(function: str, file: str, line: int = 1) -> Frame:
    return Frame(function, file, line)


@pytest.mark.parametrize("path", [
    "/root/.pyenv/versions/3.11.7/lib/python3.11/subprocess.py",
    "/usr/lib/python3.11/threading.py",
    "/usr/lib64/python3.9/queue.py",
    "/usr/lib/python2.7/threading.py",
    "/opt/py/lib/python3.13t/threading.py",
    "/usr/lib/python311.zip/concurrent/futures/_base.py",
    "/srv/venv/lib/python3.11/site-packages/requests/sessions.py",
    "/usr/lib/python3/dist-packages/urllib3/connection.py",
    "/home/u/.local/lib/python3.12/site-packages/x.py",
    "<frozen runpy>",
    "<frozen importlib._bootstrap>",
])
def test_library_code(path):
    assert frames.is_library(path)


@pytest.mark.parametrize("path", [
    "/srv/app/command-server.py", "blk.py", "<string>", "<stdin>",
    "/home/u/python-projects/lib/tool.py", "/opt/site/packages/app.py",
])
def test_application_code(path):
    assert not frames.is_library(path)


def test_first_application_frame_from_the_inside_out():
    stack = [py("_try_wait", "/usr/lib/python3.11/subprocess.py"),
             py("wait", "/usr/lib/python3.11/subprocess.py"),
             py("fetch", "/srv/venv/lib/python3.11/site-packages/lib.py"),
             py("run_command_for_client", "/srv/command-server.py", 16),
             py("<module>", "/srv/command-server.py", 35),
             py("_run_code", "<frozen runpy>")]
    assert frames.application_index(stack) == 3
    assert frames.application_index(stack[:3]) is None
    assert frames.application_index([]) is None


def test_native_rule_skips_libc_and_the_loader():
    libc = Frame("__GI___libc_read", "./io/../sysdeps/unix/sysv/linux/read.c", 26,
                 "/usr/lib/x86_64-linux-gnu/libc.so.6", native=True)
    nameless = Frame("??", "/usr/bin/sleep", 0, "/usr/bin/sleep", native=True)
    app = Frame("wait_for_input", "/tmp/prog.c", 6, "/tmp/prog", native=True)
    assert frames.is_system(libc)
    assert frames.is_system(Frame("_dl_start", "", 0, "/lib64/ld-linux-x86-64.so.2", native=True))
    assert frames.is_system(Frame("f", "", 0, "/usr/lib/x86_64-linux-gnu/libstdc++.so.6.0.30", native=True))
    assert not frames.is_system(app)
    assert not frames.is_system(Frame("f", "", 0, "/usr/lib/libcurl.so.4", native=True))
    # a runtime's own functions compiled into the program: Rust's std, C++ std templates
    for runtime in ("std::mutex::lock()", "__gthread_mutex_lock(pthread_mutex_t*)", "<std::io::stdio::Stdin>::read_line",
                    "core::ops::function::FnOnce::call_once", "std::rt::lang_start::{{closure}}", "_start"):
        assert frames.is_system(Frame(runtime, "/tmp/prog.rs", 3, "/tmp/prog", native=True)), runtime
    for own in ("shop::Till::settle(int)", "waiter::main", "<waiter::Shop as core::fmt::Display>::fmt", "start"):
        assert not frames.is_system(Frame(own, "/tmp/prog.rs", 3, "/tmp/prog", native=True)), own
    assert frames.application_index([libc, nameless, app]) == 2


def test_source_line_through_the_process_root(tmp_path, monkeypatch):
    path = tmp_path / "app.py"
    path.write_text("first\n    p.wait()  \nthird\n")
    assert frames.source_line(os.getpid(), str(path), 2) == "p.wait()"
    assert frames.source_line(os.getpid(), str(path), 9) == ""
    assert frames.source_line(os.getpid(), str(path), 0) == ""
    assert frames.source_line(os.getpid(), "<string>", 1) == ""
    monkeypatch.chdir(tmp_path)
    assert frames.source_line(os.getpid(), "app.py", 3) == "third"  # relative: via /proc/PID/cwd


def test_source_line_never_opens_a_fifo(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    box = []
    worker = threading.Thread(target=lambda: box.append(frames.source_line(os.getpid(), str(fifo), 1)),
                              daemon=True)
    worker.start()
    worker.join(5)
    assert box == [""], "opening the FIFO blocked"


# --- labels ------------------------------------------------------------------------------


def test_module_names():
    assert labels.module_name("/usr/lib/python3.11/concurrent/futures/_base.py") == "concurrent.futures._base"
    assert labels.module_name("/v/lib/python3.9/site-packages/pkg/__init__.py") == "pkg"
    assert labels.module_name("/usr/lib/python2.7/threading.pyc") == "threading"
    assert labels.module_name("/srv/app/worker.py") == "worker"


THREADING = "/usr/lib/python3.11/threading.py"
APP = "/srv/app.py"


@pytest.mark.parametrize("stack,self_type,expected", [
    # 3.11+: qualified names
    ([("Thread._wait_for_tstate_lock", THREADING), ("Thread.join", THREADING)], "", "threading.Thread.join"),
    ([("Condition.wait", THREADING), ("Event.wait", THREADING)], "", "threading.Event.wait"),
    ([("Condition.wait", THREADING), ("Queue.get", "/usr/lib/python3.11/queue.py")], "", "queue.Queue.get"),
    # older: bare names, resolved by the frame below or by `self`
    ([("_wait_for_tstate_lock", THREADING), ("join", THREADING)], "", "threading.Thread.join"),
    ([("wait", THREADING), ("wait", THREADING)], "", "threading.Event.wait"),
    ([("wait", THREADING)], "", "threading.Condition.wait"),
    ([("wait", THREADING), ("get", "/usr/lib/python2.7/Queue.py")], "", "queue.Queue.get"),
    ([("wait", THREADING), ("wait", THREADING)], "_Event", "threading.Event.wait"),
    ([("wait", THREADING), ("result", "/usr/lib/python3.9/concurrent/futures/_base.py")], "",
     "concurrent.futures.Future.result"),
])
def test_python_level_waits(stack, self_type, expected):
    frame_list = [py(f, file) for f, file in stack] + [py("main", APP)]
    app = frames.application_index(frame_list)
    assert labels.python_wait(frame_list, app, "x()", self_type) == f"waits in {expected}"


def test_c_level_lock_calls_on_the_application_line():
    app_only = [py("worker", APP)]
    assert labels.python_wait(app_only, 0, "lock.acquire()") == "waits in lock.acquire"
    assert labels.python_wait(app_only, 0, "with self._lock:") == "waits for a lock (with statement)"
    assert labels.python_wait(app_only, 0, "os.read(fd, 1)") == ""


# --- py-spy's JSON -----------------------------------------------------------------------


DUMP = [
    {"pid": 7, "thread_id": 140001, "thread_name": "MainThread", "os_thread_id": 7, "active": False,
     "owns_gil": False, "frames": [
         {"name": "Thread.join", "filename": THREADING, "module": None, "short_filename": "threading.py",
          "line": 1119, "locals": [{"name": "self", "addr": 4096, "arg": True, "repr": "<Thread at 0x1000>"}]},
         {"name": "<module>", "filename": APP, "module": None, "short_filename": "app.py", "line": 14,
          "locals": None}]},
    {"pid": 7, "thread_id": 140002, "thread_name": "feeder", "os_thread_id": None, "active": False,
     "owns_gil": False, "frames": [
         {"name": "feed", "filename": APP, "line": 4, "locals": []},
         {"name": "Thread.run", "filename": THREADING, "line": 982,
          "locals": [{"name": "self", "addr": 4096, "arg": True, "repr": "<Thread at 0x1000>"}]}]},
]


def test_py_spy_json_is_parsed():
    threads = python.parse(json.dumps(DUMP))
    assert [(t.ident, t.tid, t.name) for t in threads] == [(140001, 7, "MainThread"), (140002, None, "feeder")]
    assert threads[0].frames[1] == Frame("<module>", APP, 14, how="py-spy")
    assert threads[0].selves == ((4096, "Thread"), None)
    assert threads[1].selves == (None, (4096, "Thread"))
    with pytest.raises(python.StackError):
        python.parse("Error: Failed to find python version from target process")


def test_py_spy_error_first_line():
    assert python.first_line(b"\nError: Permission denied (os error 13)\n\nStack backtrace:\n") == \
        "Permission denied (os error 13)"


# --- gdb and eu-stack --------------------------------------------------------------------


GDB = """\
[Thread debugging using libthread_db enabled]
Thread 2 (Thread 0x7f99ddb476c0 (LWP 9172) "python"):
#0  0x00007f99de1162ec in __GI___libc_read (fd=..., buf=..., nbytes=...) at ./io/../sysdeps/unix/sysv/linux/read.c:26
#1  0x0000563f5de1e18a in wait_for_input (fd=...) at /tmp/exp/c/prog.c:6

Thread 1 (process 9165):
#0  0x00007f2643e9ee53 in __nanosleep () from /lib/x86_64-linux-gnu/libc.so.6
#1  0x0000559f0314d4af in ?? ()
#2  0x0000563f5de1e1d3 in main () at /tmp/exp/c/prog.c:14
[Inferior 1 (process 9165) detached]
"""


def test_gdb_backtraces_are_parsed_per_thread():
    maps = [(0x563f5de1e000, 0x563f5de1f000, "/tmp/exp/c/prog"),
            (0x7f99de000000, 0x7f99de200000, "/usr/lib/x86_64-linux-gnu/libc.so.6")]
    stacks = native.parse_gdb(GDB, maps)
    assert sorted(stacks) == [9165, 9172]
    read, wait = stacks[9172]
    assert read.module == "/usr/lib/x86_64-linux-gnu/libc.so.6" and read.native
    assert (wait.function, wait.file, wait.line, wait.module) == ("wait_for_input", "/tmp/exp/c/prog.c", 6,
                                                                  "/tmp/exp/c/prog")
    assert frames.application_index(stacks[9172]) == 1
    sleep = stacks[9165]
    assert sleep[0].module == "/lib/x86_64-linux-gnu/libc.so.6"
    assert frames.application_index(sleep) == 2  # `??` has no name to show


EU_STACK = """\
PID 4242 - process
TID 4242:
#0  0x00007f2ba3e1b1dd __read - /usr/lib/x86_64-linux-gnu/libc.so.6
    ./io/../sysdeps/unix/sysv/linux/read.c:26:25
#1  0x000055d1c2a4e18a wait_for_input - /tmp/prog
    /tmp/prog.c:6
TID 4243:
#0  0x00007f2ba3e1b1dd __futex_abstimed_wait_common - /usr/lib/x86_64-linux-gnu/libc.so.6
"""


def test_eu_stack_output_is_parsed_per_thread():
    stacks = native.parse_eu_stack(EU_STACK)
    assert sorted(stacks) == [4242, 4243]
    assert stacks[4242][1] == Frame("wait_for_input", "/tmp/prog.c", 6, "/tmp/prog", native=True, how="eu-stack")
    assert frames.application_index(stacks[4242]) == 1
    assert frames.application_index(stacks[4243]) is None


# --- pthread_t → TID ---------------------------------------------------------------------


def test_pthread_ids_map_to_tids_in_a_live_process():
    started, stop = threading.Event(), threading.Event()
    native_ids = []

    def helper():
        native_ids.append(int(os.readlink("/proc/thread-self").rsplit("/", 1)[1]))
        started.set()
        stop.wait()

    worker = threading.Thread(target=helper, daemon=True)
    worker.start()
    started.wait(5)
    try:
        me = int(os.readlink("/proc/thread-self").rsplit("/", 1)[1])
        tids = {int(t) for t in os.listdir("/proc/self/task")}
        found = tidmap.map_threads(os.getpid(), [threading.get_ident(), worker.ident], tids)
    finally:
        stop.set()
    assert found == {threading.get_ident(): me, worker.ident: native_ids[0]}
