"""Sends one broker request from a process other than the one that
connected, for the broker's pid-reuse check.

    handoff_client.py SOCKET REQUEST_JSON exit|stay

The parent connects and forks. With "exit" the parent exits at once and
the child sends the request only after it has been reparented, so the
process the kernel recorded as the peer is gone. With "stay" the parent
waits for the child, so the peer is alive throughout. The child prints
the reply line.
"""
import os
import socket
import sys
import time


def send_and_print(sock, request):
    sock.sendall(request.encode() + b"\n")
    reply = b""
    while not reply.endswith(b"\n"):
        chunk = sock.recv(65536)
        if not chunk:
            break
        reply += chunk
    sys.stdout.write(reply.decode())
    sys.stdout.flush()


def main():
    path, request, mode = sys.argv[1], sys.argv[2], sys.argv[3]
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(20)
    sock.connect(path)
    parent = os.getpid()
    child = os.fork()
    if child:
        if mode == "stay":
            os.waitpid(child, 0)
        os._exit(0)
    # Waits (at most 10 s) until the connecting parent is gone.
    for _ in range(1000):
        if mode == "stay" or os.getppid() != parent:
            break
        time.sleep(0.01)
    send_and_print(sock, request)
    os._exit(0)


if __name__ == "__main__":
    main()
