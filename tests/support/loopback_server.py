#!/usr/bin/env python3
"""A loopback listener for the confinement tests.

Usage:
  loopback_server.py tcp PORT_FILE
      Accept TCP connections and close each one at once.
  loopback_server.py http PORT_FILE DIR
      Serve the files under DIR over HTTP GET.

Either mode binds 127.0.0.1 on a free port, writes the port to PORT_FILE
once it is listening, and runs until it is killed.
"""
import functools
import http.server
import os
import socket
import sys


def write_port(port_file: str, port: int) -> None:
    # The rename makes the file appear complete, so a reader that polls
    # for it never reads a partial number.
    with open(port_file + ".tmp", "w", encoding="utf-8") as handle:
        handle.write(str(port))
    os.rename(port_file + ".tmp", port_file)


def serve_tcp(port_file: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        write_port(port_file, listener.getsockname()[1])
        while True:
            connection, _ = listener.accept()
            connection.close()


def serve_http(port_file: str, directory: str) -> None:
    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, fmt: str, *args: object) -> None:
            sys.stderr.write("loopback-http: " + (fmt % args) + "\n")

    handler = functools.partial(Handler, directory=directory)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    write_port(port_file, server.server_address[1])
    server.serve_forever()


def main() -> int:
    args = sys.argv[1:]
    if len(args) == 2 and args[0] == "tcp":
        serve_tcp(args[1])
    elif len(args) == 3 and args[0] == "http":
        serve_http(args[1], args[2])
    else:
        sys.stderr.write(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
