#!/usr/bin/env python3
"""Stands in for dmesg: prints about 1 MB of kernel-log-like lines, more than a pipe holds."""
import sys

LINE = "[%12.6f] usb 1-1: new high-speed USB device number %d using xhci_hcd\n"
out = sys.stdout.buffer
for i in range(16384):
    out.write((LINE % (i / 1000.0, i)).encode())
out.flush()
