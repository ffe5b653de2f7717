#!/usr/bin/env python3
"""Receive sd_notify datagrams on NOTIFY_SOCKET and log each one.

Usage: notify_listener.py SOCKET LOG BROKER_SOCKET MOUNT

Binds a unix datagram socket at SOCKET, as a service manager does, and
appends one line to LOG per state the service sends. When a message has
READY=1, the line also records whether BROKER_SOCKET was a socket and
MOUNT a FUSE mount at that moment ("socket=yes mount=yes"), so a test
can check that readiness came only after both existed.
"""
import os
import socket
import stat
import sys


def is_socket(path):
    try:
        return stat.S_ISSOCK(os.lstat(path).st_mode)
    except OSError:
        return False


def is_fuse_mount(path):
    # mountinfo, not stat: stat on a FUSE mount would ask the daemon.
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        for line in f:
            fields = line.split()
            if fields[4] != path:
                continue
            after = fields[fields.index("-") + 1:]
            if after and after[0].startswith("fuse"):
                return True
    return False


def main():
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    path, log, broker_socket, mount = sys.argv[1:]
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    os.chmod(path, 0o600)
    while True:
        data = sock.recv(4096).decode("utf-8", "replace")
        states = " ".join(data.split("\n"))
        if "READY=1" in data.split("\n"):
            states += " socket=%s mount=%s" % (
                "yes" if is_socket(broker_socket) else "no",
                "yes" if is_fuse_mount(mount) else "no")
        with open(log, "a", encoding="utf-8") as f:
            f.write(states + "\n")


if __name__ == "__main__":
    main()
