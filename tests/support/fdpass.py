#!/usr/bin/env python3
"""Passes one open file descriptor between two processes over SCM_RIGHTS.

Usage:
  fdpass.py recv SOCKET --open PATH
      Bind SOCKET, accept one sender, receive one descriptor and keep it
      open (it is a permit), then open PATH and read it to the end.
  fdpass.py recv SOCKET --read
      Bind SOCKET, accept one sender, receive one descriptor and read
      from it (it is an open secret).
  fdpass.py send SOCKET FILE [--read]
      Open FILE, connect to SOCKET, send the descriptor and wait until
      the receiver is done. With --read, read FILE through the
      descriptor before sending it and again after the receiver is done.

Every result line names its side and step, e.g. "receiver: ok
sha256=HEX bytes=N" or "sender after: error EACCES"; content is never
printed. Every wait is bounded. Exit status: 0 when every step of this
side succeeded, 1 otherwise, 2 on bad usage.
"""
import errno
import hashlib
import os
import socket
import sys
import time

LIMIT_SECONDS = 20


def read_all(fd: int) -> bytes:
    chunks = []
    offset = 0
    while True:
        chunk = os.pread(fd, 65536, offset)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        offset += len(chunk)


def report(label: str, step) -> bool:
    """Runs step(), which returns bytes read, and prints its outcome."""
    try:
        data = step()
    except OSError as error:
        name = errno.errorcode.get(error.errno, str(error.errno))
        print(f"{label}: error {name}", flush=True)
        return False
    digest = hashlib.sha256(data).hexdigest()
    print(f"{label}: ok sha256={digest} bytes={len(data)}", flush=True)
    return True


def open_and_read(path: str) -> bytes:
    fd = os.open(path, os.O_RDONLY)
    try:
        return read_all(fd)
    finally:
        os.close(fd)


def receive(socket_path: str, mode: str, path: str) -> int:
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(socket_path)
    # The sender runs under another account.
    os.chmod(socket_path, 0o666)
    listener.listen(1)
    listener.settimeout(LIMIT_SECONDS)
    conn, _ = listener.accept()
    conn.settimeout(LIMIT_SECONDS)
    _, fds, _, _ = socket.recv_fds(conn, 16, 1)
    if len(fds) != 1:
        print("receiver: error no descriptor received", flush=True)
        return 1
    received = fds[0]
    if mode == "--open":
        ok = report("receiver", lambda: open_and_read(path))
    else:
        ok = report("receiver", lambda: read_all(received))
    conn.sendall(b"done\n")
    conn.close()
    os.close(received)
    return 0 if ok else 1


def connect(socket_path: str) -> socket.socket:
    deadline = time.monotonic() + LIMIT_SECONDS
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(socket_path)
            return sock
        except (FileNotFoundError, ConnectionRefusedError):
            sock.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def send(socket_path: str, path: str, read: bool) -> int:
    fd = os.open(path, os.O_RDONLY)
    ok = True
    if read:
        ok = report("sender before", lambda: read_all(fd)) and ok
    sock = connect(socket_path)
    sock.settimeout(LIMIT_SECONDS)
    socket.send_fds(sock, [b"fd"], [fd])
    reply = sock.recv(16)
    sock.close()
    if reply != b"done\n":
        print("sender: error receiver did not finish", flush=True)
        ok = False
    if read:
        ok = report("sender after", lambda: read_all(fd)) and ok
    os.close(fd)
    return 0 if ok else 1


def main() -> int:
    args = sys.argv[1:]
    if len(args) == 4 and args[0] == "recv" and args[2] == "--open":
        return receive(args[1], "--open", args[3])
    if len(args) == 3 and args[0] == "recv" and args[2] == "--read":
        return receive(args[1], "--read", "")
    if len(args) in (3, 4) and args[0] == "send":
        read = len(args) == 4 and args[3] == "--read"
        if len(args) == 4 and not read:
            sys.stderr.write("fdpass: send takes only --read\n")
            return 2
        return send(args[1], args[2], read)
    sys.stderr.write("fdpass: bad usage; see the docstring of fdpass.py\n")
    return 2


if __name__ == "__main__":
    sys.exit(main())
