#!/usr/bin/env python3
"""Runs the command client for `dmesg` and prints what it got."""
import os
import subprocess
import sys
from subprocess import PIPE

client = os.path.join(os.path.dirname(os.path.abspath(__file__)), "command-client.py")
p = subprocess.Popen([sys.executable, client, "dmesg", sys.argv[1]], stdout=PIPE)

sys.stdout.buffer.write(p.communicate()[0])
