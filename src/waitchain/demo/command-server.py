#!/usr/bin/env python3
"""Runs an allowed command for each client and sends back its output (the seed's server)."""
import os
import socket
import subprocess
import sys
from subprocess import PIPE

HERE = os.path.dirname(os.path.abspath(__file__))
ALLOWED = {"ls": ["ls"], "dmesg": [sys.executable, os.path.join(HERE, "dmesg.py")]}


def run_command_for_client(command, clientsocket):
    if command in ALLOWED:
        p = subprocess.Popen(ALLOWED[command], stdout=PIPE)
        p.wait()
        out = p.stdout.read()
    else:
        out = b"command not allowed\n"
    clientsocket.sendall(out)


serversocket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
serversocket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
serversocket.bind(("127.0.0.1", int(sys.argv[1]) if len(sys.argv) > 1 else 0))
serversocket.listen(5)
print(serversocket.getsockname()[1], flush=True)  # the port, for whoever started us

# Server loop
while True:
    (clientsocket, address) = serversocket.accept()

    command = clientsocket.recv(100).decode("utf-8")
    print("server got command: " + command, file=sys.stderr)

    run_command_for_client(command, clientsocket)

    clientsocket.close()
