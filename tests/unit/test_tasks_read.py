"""procfs/tasks.read_tasks: a process with one thread is read without listing task/ (its main
thread's stat counts the threads), the same Task as read_task gives; one with more is listed."""

from __future__ import annotations

import os
import threading
from typing import List, Optional

from waitchain.demo.harness import wait_until
from waitchain.procfs.reader import ProcFS
from waitchain.procfs.tasks import read_task, read_tasks


class ListingCounted(ProcFS):
    def __init__(self) -> None:
        super().__init__()
        self.listings = 0

    def listdir(self, pid: Optional[int], *parts: str) -> List[str]:
        self.listings += parts == ("task",)
        return super().listdir(pid, *parts)


def test_one_thread_is_read_without_listing() -> None:
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(write_end)
            os.read(read_end, 1)
        finally:
            os._exit(0)
    os.close(read_end)
    try:
        wait_until(lambda: read_task(ProcFS(), pid, pid).syscall is not None, "the child blocks in read")
        fs = ListingCounted()
        tasks = read_tasks(fs, pid)
        assert fs.listings == 0 and [t.tid for t in tasks] == [pid]
        assert tasks == [read_task(fs, pid, pid)]
    finally:
        os.close(write_end)
        os.waitpid(pid, 0)


def test_more_threads_are_listed() -> None:
    done = threading.Event()
    thread = threading.Thread(target=done.wait)
    thread.start()
    try:
        fs = ListingCounted()
        tasks = read_tasks(fs, os.getpid())
        assert fs.listings == 1 and tasks[0].tid == os.getpid() and len(tasks) >= 2
        assert thread.native_id in [t.tid for t in tasks]
    finally:
        done.set()
        thread.join()
