"""The check made before reading a process's memory: which threads make a read of it wait
(procfs/mmaplock.py), from kernel stacks recorded on 6.18 and the kernel's known shapes."""

from __future__ import annotations

import pytest

from waitchain.procfs.kstack import parse_stack
from waitchain.procfs.mmaplock import FAULTING, QUEUED, REMOTE_FAULT, classify

# Recorded on 6.18: a thread of the victim in mmap() behind a /proc/PID/mem reader's fault.
QUEUED_MMAP = """\
[<0>] vm_mmap_pgoff+0xe9/0x230
[<0>] do_syscall_64+0x71/0x290
[<0>] entry_SYSCALL_64_after_hwframe+0x76/0x7e
"""
# Recorded on 6.18: that reader, faulting the victim's FUSE page in (it holds the victim's lock).
MEM_READER = """\
[<0>] filemap_fault+0xac0/0x1700
[<0>] __do_fault+0x34/0xd0
[<0>] do_fault+0x319/0x660
[<0>] __handle_mm_fault+0x842/0xf80
[<0>] handle_mm_fault+0xd0/0x310
[<0>] __get_user_pages+0x1a3/0x1120
[<0>] get_user_pages_remote+0xee/0x440
[<0>] __access_remote_vm+0xd9/0x3b0
[<0>] mem_rw+0x1c4/0x2d0
[<0>] vfs_read+0xbb/0x3d0
[<0>] __x64_sys_pread64+0xa3/0xe0
"""
OWN_FAULT = """\
[<0>] folio_wait_bit_common+0x110/0x310
[<0>] filemap_fault+0x739/0x1650
[<0>] __do_fault+0x34/0xd0
[<0>] do_fault+0x319/0x660
[<0>] __handle_mm_fault+0x7fc/0xf40
[<0>] handle_mm_fault+0xd0/0x310
[<0>] exc_page_fault+0x176/0x770
[<0>] asm_exc_page_fault+0x22/0x30
"""
FAULT_QUEUED = """\
[<0>] rwsem_down_read_slowpath+0x2b6/0x4d0
[<0>] lock_mm_and_find_vma+0x7f/0x120
[<0>] do_user_addr_fault+0x1c8/0x670
[<0>] exc_page_fault+0x77/0x170
[<0>] asm_exc_page_fault+0x26/0x30
"""
# Look-alikes that must not stop a read: another rwsem (an inode's), a FUSE lookup, a pipe.
INODE_RWSEM = """\
[<0>] rwsem_down_write_slowpath+0x2b6/0x4d0
[<0>] down_write+0x4a/0x60
[<0>] ext4_buffered_write_iter+0x3a/0x160
[<0>] vfs_write+0x23a/0x360
"""
FUSE_INODE_LOCK = """\
[<0>] fuse_lock_inode+0x33/0x50
[<0>] fuse_lookup+0x56/0x1b0
[<0>] fuse_atomic_open+0x124/0x190
[<0>] path_openat+0xba6/0x12d0
"""


@pytest.mark.parametrize("stack, wchan, call, expected", [
    (QUEUED_MMAP, "vm_mmap_pgoff", "mmap", QUEUED),
    ("", "vm_mmap_pgoff", "mmap", QUEUED),  # not root: wchan alone
    ("", "rwsem_down_write_slowpath", "munmap", QUEUED),
    (FAULT_QUEUED, "rwsem_down_read_slowpath", "", QUEUED),
    (OWN_FAULT, "folio_wait_bit_common", "", FAULTING),
    (MEM_READER, "filemap_fault", "pread64", REMOTE_FAULT),
    (INODE_RWSEM, "rwsem_down_write_slowpath", "write", ""),
    ("", "rwsem_down_write_slowpath", "write", ""),
    (FUSE_INODE_LOCK, "fuse_lock_inode", "openat", ""),
    ("", "pipe_read", "read", ""),
])
def test_classify(stack: str, wchan: str, call: str, expected: str) -> None:
    assert classify(parse_stack(stack), wchan, call) == expected
