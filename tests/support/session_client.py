#!/usr/bin/env python3
"""Sends keyholed's session operations the way pam_keyhole.so does.

Usage:
  session_client.py send SOCKET JSON
      Send one request line (JSON) and print the reply line.
  session_client.py leader SOCKET UID SERVICE DIR
      Open a session for UID with this process as its leader, write the
      reply to DIR/session.json, then act as the session's login
      process: run each command that appears as DIR/cmd.N (N = 1, 2, ...)
      with /bin/sh as a child of this process, without waiting for it,
      and write its exit status to DIR/rc.N when it ends. Exit once
      DIR/exit exists and every child has ended, or after 120 s.

keyholed takes the leader from SO_PEERCRED, so the leader must be the
process that sends session_open; this script does both. Exit status: 0
on success, 1 when the broker rejects session_open or cannot be
reached, 2 on bad usage.
"""
import json
import os
import socket
import subprocess
import sys
import time

LIFETIME_SECONDS = 120
REPLY_TIMEOUT_SECONDS = 20


def send(path: str, line: str) -> str:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(REPLY_TIMEOUT_SECONDS)
        conn.connect(path)
        conn.sendall(line.encode() + b"\n")
        reply = b""
        while not reply.endswith(b"\n"):
            chunk = conn.recv(65536)
            if not chunk:
                break
            reply += chunk
    return reply.decode().strip()


def write_atomic(path: str, text: str) -> None:
    with open(path + ".tmp", "w") as out:
        out.write(text)
    os.rename(path + ".tmp", path)


def lead(sock: str, uid: int, service: str, work: str) -> int:
    request = {"op": "session_open", "uid": uid, "service": service,
               "tty": "/dev/pts/9"}
    reply = send(sock, json.dumps(request))
    write_atomic(os.path.join(work, "session.json"), reply + "\n")
    if not json.loads(reply).get("ok"):
        return 1
    children = {}
    started = 0
    deadline = time.monotonic() + LIFETIME_SECONDS
    while time.monotonic() < deadline:
        command = os.path.join(work, f"cmd.{started + 1}")
        if os.path.exists(command):
            started += 1
            children[started] = subprocess.Popen(["/bin/sh", command])
        for number, child in list(children.items()):
            if child.poll() is not None:
                write_atomic(os.path.join(work, f"rc.{number}"),
                             f"{child.returncode}\n")
                del children[number]
        if not children and os.path.exists(os.path.join(work, "exit")):
            return 0
        time.sleep(0.05)
    return 1


def main() -> int:
    args = sys.argv[1:]
    try:
        if len(args) == 3 and args[0] == "send":
            print(send(args[1], args[2]))
            return 0
        if len(args) == 5 and args[0] == "leader":
            return lead(args[1], int(args[2]), args[3], args[4])
    except OSError as error:
        sys.stderr.write(f"session_client: {error}\n")
        return 1
    sys.stderr.write("session_client: bad usage; see the docstring\n")
    return 2


if __name__ == "__main__":
    sys.exit(main())
