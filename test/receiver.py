#!/usr/bin/env python3
"""A webhook receiver for the cocohooks tests, built on Python's http.server.

It records every request as one JSON line (method, path, headers, body,
time received) in the log file *before* answering, so once a delivery has
finished its record is on disk.  The path chooses the answer:

    /status/<code>     answer with that status (default path: 200);
                       ?retry_after=<s> adds a Retry-After header
    /slow/<ms>         wait <ms> milliseconds, then answer 200
    /redirect          answer 302 with a Location header
    /close             close the connection without answering
    /closeafter        answer 200 with "Connection: close", then close
    /failfirst         answer 500 to the first request of each webhook-id,
                       200 to the next ones (a flaky receiver)
    /if/<text>/<ms>/<code>
                       when the body contains <text>, wait <ms> milliseconds
                       and answer <code>; otherwise answer 200 at once
    /body/<n>          answer 200 with a body of <n> bytes: "0123456789" over
                       and over; ?status=<code> answers with that status
    /busy/<n>/<ms>     answer 429 at once while more than <n> requests to
                       this path are in flight (this one included), else
                       wait <ms> milliseconds and answer 200 (a receiver
                       that pushes back under load); ?retry_after=<s> adds
                       a Retry-After header to the 429

Each record's "in_flight" is the number of requests to its path (the
query left out) being handled when it came, itself included: a request
counts until its answer is about to be written, so a client that waits for
an answer before its next request never shows two.

With --fail-if TEXT, a request whose body contains TEXT is answered 503,
whatever its path (a receiver that fails for one document only).  With
--fail-while FILE, every request is answered 503 while FILE exists (a
receiver that fails for a while and recovers, without a moment down);
such records have "failed": true, and ?retry_after=<s> adds a Retry-After
header to those answers.

Only listens on 127.0.0.1.  With --tls-cert and --tls-key it speaks HTTPS
(TLS 1.2 or later) with that certificate.  Usage:
    receiver.py --log FILE [--port N] [--port-file FILE] [--fail-if TEXT]
                [--fail-while FILE] [--tls-cert PEM --tls-key PEM]
"""
import argparse
import json
import os
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()
SEEN_IDS = set()
IN_FLIGHT = {}  # path without its query -> requests being handled


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as receivers in the wild do
    # headers and body are two writes: without this, Nagle holds the body
    # for the client's delayed ACK (40 ms per request, in sequence)
    disable_nagle_algorithm = True
    log_path = None
    fail_if = None
    fail_while = None
    flight_key = None
    in_flight = 0

    def log_message(self, fmt, *args):  # keep test output quiet
        pass

    def _record(self, body, failed=False):
        rec = {
            "method": self.command,
            "path": self.path,
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "body": body.decode("utf-8", errors="replace"),
            "received_at": time.time(),
            "peer_port": self.client_address[1],
            "in_flight": self.in_flight,
        }
        if failed:
            rec["failed"] = True
        if hasattr(self.connection, "session_reused"):
            rec["tls_version"] = self.connection.version()
            rec["tls_session_reused"] = self.connection.session_reused
        line = json.dumps(rec, sort_keys=True) + "\n"
        with LOCK:
            with open(self.log_path, "a", encoding="utf-8") as f:
                f.write(line)
                f.flush()

    def _enter(self):
        self.flight_key = self.path.split("?")[0]
        with LOCK:
            IN_FLIGHT[self.flight_key] = IN_FLIGHT.get(self.flight_key, 0) + 1
            self.in_flight = IN_FLIGHT[self.flight_key]

    def _leave(self):
        # once, before the answer goes out (or the connection closes)
        if self.flight_key is not None:
            with LOCK:
                IN_FLIGHT[self.flight_key] -= 1
            self.flight_key = None

    def _answer(self, code, extra=None, payload=None):
        self._leave()
        if payload is None:
            payload = b'{"ok": true}' if 200 <= code < 300 else b'{"ok": false}'
        if code in (204, 304) or code < 200:
            # these answers have no body (RFC 9110); sending one would leave
            # stray bytes on a kept-alive connection
            payload = b""
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(payload)

    def _handle(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self._enter()
        try:
            self._respond(body)
        finally:
            self._leave()

    def _respond(self, body):
        # decided before the record, which says so
        query = dict(q.split("=", 1) for q in self.path.partition("?")[2].split("&") if "=" in q)
        if self.fail_while is not None and os.path.exists(self.fail_while):
            self._record(body, failed=True)
            extra = {"Retry-After": query["retry_after"]} if "retry_after" in query else None
            self._answer(503, extra)
            return
        self._record(body)
        parts = [p for p in self.path.split("?")[0].split("/") if p]
        if self.fail_if is not None and self.fail_if in body:
            self._answer(503)
        elif parts[:1] == ["status"] and len(parts) > 1:
            extra = {"Retry-After": query["retry_after"]} if "retry_after" in query else None
            self._answer(int(parts[1]), extra)
        elif parts[:1] == ["slow"] and len(parts) > 1:
            time.sleep(int(parts[1]) / 1000.0)
            self._answer(200)
        elif parts[:1] == ["busy"] and len(parts) > 2:
            if self.in_flight > int(parts[1]):
                extra = {"Retry-After": query["retry_after"]} if "retry_after" in query else None
                self._answer(429, extra)
            else:
                time.sleep(int(parts[2]) / 1000.0)
                self._answer(200)
        elif parts[:1] == ["redirect"]:
            self._answer(302, {"Location": "/status/200"})
        elif parts[:1] == ["body"] and len(parts) > 1:
            n = int(parts[1])
            payload = (b"0123456789" * (n // 10 + 1))[:n]
            self._answer(int(query.get("status", "200")), None, payload)
        elif parts[:1] == ["failfirst"]:
            wid = self.headers.get("webhook-id", "")
            with LOCK:
                first = wid not in SEEN_IDS
                SEEN_IDS.add(wid)
            self._answer(500 if first else 200)
        elif parts[:1] == ["if"] and len(parts) > 3:
            from urllib.parse import unquote
            if unquote(parts[1]).encode() in body:
                time.sleep(int(parts[2]) / 1000.0)
                self._answer(int(parts[3]))
            else:
                self._answer(200)
        elif parts[:1] == ["closeafter"]:
            # answers, then closes: the client's next request needs a new connection
            self.close_connection = True
            self._answer(200, {"Connection": "close"})
        elif parts[:1] == ["close"]:
            self.close_connection = True
            self.connection.close()
        else:
            self._answer(200)

    do_POST = _handle
    do_GET = _handle
    do_PUT = _handle


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--log", required=True)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    ap.add_argument("--tls-cert")
    ap.add_argument("--tls-key")
    ap.add_argument("--fail-if")
    ap.add_argument("--fail-while")
    args = ap.parse_args()
    Handler.fail_while = args.fail_while
    Handler.log_path = args.log
    if args.fail_if is not None:
        Handler.fail_if = args.fail_if.encode()
    open(args.log, "a").close()
    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer.request_queue_size = 1024
    srv = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    if args.tls_cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(args.tls_cert, args.tls_key)
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(str(srv.server_address[1]))
        os.rename(tmp, args.port_file)
    sys.stdout.write("listening on 127.0.0.1:%d\n" % srv.server_address[1])
    sys.stdout.flush()
    srv.serve_forever()


if __name__ == "__main__":
    main()
