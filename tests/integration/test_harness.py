#!/usr/bin/env python3
"""test_harness.py — checks harness.py itself with a stand-in for `tsunagu serve` (this very
script run as `test_harness.py serve`: a tiny HTTP server that prints the gateway's
"listening on" line and, on request, a sanitizer report or an early exit). It proves that a
sanitizer report in the server's stderr fails the test, that a server that dies at start is
reported with its log, and that stop/close clean up.

Usage: test_harness.py  (no argument: runs the checks; `serve` is the stand-in)."""

import http.server
import os
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


def fake_serve():
    """The stand-in server. FAKE_MODE: ok | ubsan | asan | exit | slowstop."""
    mode = os.environ.get("FAKE_MODE", "ok")
    if mode == "exit":
        sys.stderr.write("tsunagu serve: redis: cannot start (fake)\n")
        sys.exit(1)

    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = b'{"resourceType":"OperationOutcome","issue":[]}'
            self.send_response(200)
            self.send_header("Content-Type", "application/fhir+json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    sys.stderr.write("tsunagu serve: listening on 127.0.0.1:0 (port %d), Redis embedded\n"
                     % srv.server_address[1])
    if mode == "ubsan":
        sys.stderr.write("gateway/x.c:1:2: runtime error: signed integer overflow\n")
    if mode == "asan":
        sys.stderr.write("==1==ERROR: AddressSanitizer: heap-use-after-free on address 0x1\n")
    sys.stderr.flush()
    stop = threading.Event()

    def on_term(*_):
        if mode == "slowstop":
            return  # ignores SIGTERM: the harness must kill -9 it
        stop.set()

    signal.signal(signal.SIGTERM, on_term)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    while not stop.wait(0.1):
        pass
    sys.exit(0)


def gateway(mode, **kw):
    return harness.Gateway(os.path.abspath(__file__), env={"FAKE_MODE": mode}, **kw)


def t_clean():
    with gateway("ok") as gw:
        r = gw.get("/readyz")
        assert r.status == 200 and r.json["resourceType"] == "OperationOutcome", r
        tmp = gw._tmp
        assert os.path.isdir(tmp)
    assert not os.path.exists(tmp), "temp dir left behind"
    assert gw.proc.returncode == 0, gw.proc.returncode


def t_reports_fail(mode, marker):
    gw = gateway(mode)
    gw.start()
    assert gw.get("/healthz").status == 200
    try:
        gw.close()
    except AssertionError as e:
        assert marker in str(e), e
        return
    raise AssertionError("a %s report in stderr did not fail the test" % mode)


def t_report_fails_with_block():
    try:
        with gateway("ubsan"):
            pass
    except AssertionError as e:
        assert "runtime error:" in str(e)
        return
    raise AssertionError("the with block hid the sanitizer report")


def t_report_after_kill9():
    gw = gateway("asan")
    gw.start()
    gw.kill9()
    try:
        gw.close()
    except AssertionError:
        return
    raise AssertionError("a report before kill -9 was not seen")


def t_start_failure():
    gw = gateway("exit")
    try:
        gw.start(timeout=10)
    except RuntimeError as e:
        assert "cannot start (fake)" in str(e), e
        return
    finally:
        gw.close()
    raise AssertionError("a server that exits at start was not reported")


def t_slow_stop():
    gw = gateway("slowstop")
    gw.start()
    t0 = time.monotonic()
    rc = gw.stop(timeout=1)
    assert rc == -signal.SIGKILL, rc
    assert time.monotonic() - t0 < 10
    gw.close()


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        fake_serve()
        return 0
    c = harness.Checks()
    c.run("clean", t_clean)
    c.run("ubsan_report", t_reports_fail, "ubsan", "runtime error:")
    c.run("asan_report", t_reports_fail, "asan", "AddressSanitizer")
    c.run("report_in_with_block", t_report_fails_with_block)
    c.run("report_after_kill9", t_report_after_kill9)
    c.run("start_failure", t_start_failure)
    c.run("slow_stop", t_slow_stop)
    return c.finish()


if __name__ == "__main__":
    sys.exit(main())
