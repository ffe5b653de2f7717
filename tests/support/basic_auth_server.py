#!/usr/bin/env python3
"""A loopback HTTP server that serves /report only with HTTP Basic auth.

Usage: basic_auth_server.py PORT_FILE USER PASSWORD_FILE

Binds 127.0.0.1 on a free port, writes the port to PORT_FILE once it is
listening, and returns 401 to any request without the right credentials.
The password is read from a file so that it never appears in a process
listing.
"""
import base64
import hmac
import http.server
import os
import sys


def main() -> None:
    port_file, user, password_file = sys.argv[1], sys.argv[2], sys.argv[3]
    with open(password_file, encoding="utf-8") as handle:
        password = handle.read().strip()
    expected = "Basic " + base64.b64encode(
        f"{user}:{password}".encode()).decode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server naming)
            offered = self.headers.get("Authorization", "")
            if not hmac.compare_digest(offered.encode(), expected.encode()):
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="report"')
                self.end_headers()
                return
            if self.path != "/report":
                self.send_response(404)
                self.end_headers()
                return
            body = b"quarterly report: 42 widgets shipped\n"
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, fmt: str, *args: object) -> None:
            sys.stderr.write("report-server: " + (fmt % args) + "\n")

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    with open(port_file + ".tmp", "w", encoding="utf-8") as handle:
        handle.write(str(server.server_address[1]))
    os.rename(port_file + ".tmp", port_file)
    server.serve_forever()


if __name__ == "__main__":
    main()
