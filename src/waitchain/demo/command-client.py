#!/usr/bin/env python3
"""Sends a command name to the command server and copies the reply to stdout."""
import socket
import sys

name = sys.argv[1]
port = int(sys.argv[2])

sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
sock.connect(("127.0.0.1", port))

sock.sendall(name.encode("utf-8"))

while True:
    data = sock.recv(100)
    if len(data) == 0:
        break
    sys.stdout.buffer.write(data)
