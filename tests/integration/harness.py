"""harness.py — run the real `tsunagu serve` for integration tests (Python 3 stdlib only).

Usage:

    import harness
    with harness.Gateway(binary) as gw:             # fresh temp data dir, embedded Redis
        r = gw.request("POST", "/fhir/Patient", {"resourceType": "Patient"})
        assert r.status == 201, r
        print(r.headers["Location"], r.json)
        pid = gw.redis_pid()                        # the embedded redis-server child
    # leaving the block stops the gateway (SIGTERM, then kill -9), removes the temp dir,
    # and raises AssertionError if the server's stderr shows a sanitizer report.

Gateway(binary, data_dir=None, env=None, keep_dir=False, auth=False, tls=None):
    data_dir  None: a fresh temp dir (removed at the end unless keep_dir); a path: use it
              (never removed), e.g. to restart on the same data after a crash.
    env       extra environment variables (TSUNAGU_MAX_BODY_BYTES, TSUNAGU_REDIS_URL, …).
    auth      False (default): TSUNAGU_AUTH=off, every request is served without a token
              (the tests of the FHIR API); True: authentication on (gateway/auth/auth.h), as
              in production. The env argument wins over it.
    tls       None: plain HTTP; an ssl.SSLContext: the gateway serves HTTPS (env sets
              TSUNAGU_TLS_CERT/_KEY) and every request of this object, readiness included, goes
              over TLS with that context (base is then "https://…").

    admin(*args)        runs `tsunagu admin ARGS…` on this gateway's Redis; returns
                        (exit status, stdout, stderr).
    create_client(org="Organization/test", name="test", scope="system/*.cruds", role=None,
                  area=None, jwks=None) -> (client_id, client_secret) via the admin command
                  (jwks: a dict, written to a file for --jwks).
    token(client_id, secret, scope=None) -> the access token (POST /auth/token, HTTP Basic);
                        raises AssertionError when the answer is not 200.
    auth_headers(token) -> {"Authorization": "Bearer …"}

    start(timeout=60)   starts the process on 127.0.0.1:<free port> (TSUNAGU_LISTEN port 0; the
                        bound port is read from the "listening on … (port N)" line) and waits
                        for /readyz 200. Raises RuntimeError with the log tail on failure.
    stop(timeout=30)    SIGTERM, wait, then SIGKILL; checks stderr for sanitizer reports.
    kill9()             SIGKILL the gateway (crash); its log is still checked at the end.
    restart()           kill nothing: start again on the same data dir (after stop or kill9).
    wait_ready(timeout) polls /readyz until 200 (True) or timeout (False).
    redis_pid()         pid of the embedded redis-server child, None while it is down (or
                        when TSUNAGU_REDIS_URL is set). wait_redis_pid(timeout, other_than):
                        waits for a (new) child, e.g. after killing it.
    sigstop_redis() / sigcont_redis(pid)   freeze / resume the child; stop() resumes it.
    request(method, path, body=None, headers=None, timeout=30) -> Response (over TLS when tls)
    port, base ("http://127.0.0.1:N"; https with tls), data_dir, log_path, proc.
    print_logs()        prints the tails of the gateway's and redis-server's logs (the with
                        block does it when its body raises).

    redis(*args)        one command on the embedded Redis (its Unix socket), binary-safe: the
                        reply as bytes / int / list / None; a Redis error raises RedisError.
    audit_records(min_count=0, timeout=20, settle=0.6) -> every audit record in tsg:audit,
                        oldest first, decoded (gateway/auth/auth.h, "Audit"): dicts with i m p q
                        c o a e v d (str), s (status), t (recorded, µs), id ("<entry>-<k>").
                        Records reach Redis from the gateway's journal within ~250 ms: this
                        waits until at least min_count are there and no more arrive for
                        `settle` seconds.

Response: status, reason, headers (case-insensitive get), body (bytes), json (parsed body or
None), elapsed (seconds). Module helpers: request(port, ...) without a Gateway, free_port(),
sanitizer_report(text). request(..., context=ctx) speaks HTTPS with the ssl.SSLContext ctx.

Checks / Skip: a tiny runner — checks.run(name, fn, *args) runs one test, prints PASS/FAIL/SKIP
(an exception fails only that test; raise Skip("why") to skip), checks.finish() prints the
summary and returns the exit status.

Sanitizers: a report ("AddressSanitizer", "LeakSanitizer", "ThreadSanitizer", UBSan's
"runtime error:") in the gateway's stderr fails the test at stop()/exit, also after kill9().
"""

import http.client
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time

SANITIZER_MARKERS = ("AddressSanitizer", "LeakSanitizer", "ThreadSanitizer",
                     "MemorySanitizer", "runtime error:")


class RedisError(Exception):
    pass


def _resp_read(f):
    line = f.readline()
    if not line:
        raise ConnectionError("redis closed the connection")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest
    if kind == b"-":
        raise RedisError(rest.decode("utf-8", "replace"))
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)
        return data[:-2]
    if kind == b"*":
        n = int(rest)
        return None if n < 0 else [_resp_read(f) for _ in range(n)]
    raise RedisError("unexpected reply %r" % line)


def redis_command(sock_path, *args):
    """One command over the Unix socket sock_path (RESP, binary-safe)."""
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(10)
        s.connect(sock_path)
        s.sendall(out)
        with s.makefile("rb") as f:
            return _resp_read(f)


AUDIT_TEXTS = ("i", "m", "p", "q", "c", "o", "a", "e", "v", "d")


def audit_frames(blob):
    """The records of one tsg:audit entry (its r field, or its z field unpacked: frames,
    gateway/auth/auth.h, "Audit")."""
    recs, off = [], 0
    while off < len(blob):
        ln, _crc = struct.unpack_from("<II", blob, off)
        pl = blob[off + 8:off + 8 + ln]
        assert len(pl) == ln and pl[0] == 1, "damaged audit frame at %d" % off
        t, = struct.unpack_from("<q", pl, 1)
        s, = struct.unpack_from("<H", pl, 9)
        rec, p = {"t": t, "s": s}, 11
        for name in AUDIT_TEXTS:
            n, = struct.unpack_from("<H", pl, p)
            rec[name] = pl[p + 2:p + 2 + n].decode("utf-8", "replace")
            p += 2 + n
        assert p == ln, "audit frame with trailing bytes"
        recs.append(rec)
        off += 8 + ln
    return recs


def zstd_unpack(blob):
    """A zstd frame unpacked (the zstd command: python3 has no zstd module of its own)."""
    out = subprocess.run(["zstd", "-dcq"], input=blob, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, check=False)
    assert out.returncode == 0, "zstd -d failed: %r" % out.stderr
    return out.stdout


def free_port():
    """A TCP port that was free a moment ago on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sanitizer_report(text):
    """The lines of text around the first sanitizer report, or None when there is none."""
    for m in SANITIZER_MARKERS:
        i = text.find(m)
        if i >= 0:
            start = text.rfind("\n", 0, max(0, i - 2000)) + 1
            return text[start:i + 4000]
    return None


class Response:
    """One HTTP answer. json is the parsed body when it is JSON, else None."""

    def __init__(self, status, reason, headers, body, elapsed):
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body
        self.elapsed = elapsed
        self.json = None
        ct = (headers.get("Content-Type") or "").lower()
        if body and "json" in ct:
            try:
                self.json = json.loads(body.decode("utf-8"))
            except ValueError:
                self.json = None

    def header(self, name):
        return self.headers.get(name)

    def __repr__(self):
        text = self.body[:600].decode("utf-8", "replace")
        return "<%d %s %.3fs %s>" % (self.status, self.reason, self.elapsed, text)


def request(port, method, path, body=None, headers=None, timeout=30, host="127.0.0.1",
            context=None):
    """One request on a new connection. body: dict/list (sent as FHIR JSON), str or bytes.
    A dict body gets Content-Type application/fhir+json unless headers name one. context: an
    ssl.SSLContext for HTTPS (None: plain HTTP).
    Connection errors propagate (ConnectionError, http.client exceptions, socket.timeout)."""
    hdrs = {"Accept": "application/fhir+json"}
    if headers:
        hdrs.update(headers)
    data = None
    if body is not None:
        if isinstance(body, (dict, list)):
            data = json.dumps(body, ensure_ascii=False).encode("utf-8")
            if not any(k.lower() == "content-type" for k in hdrs):
                hdrs["Content-Type"] = "application/fhir+json"
        elif isinstance(body, str):
            data = body.encode("utf-8")
        else:
            data = body
    t0 = time.monotonic()
    if context is not None:
        conn = http.client.HTTPSConnection(host, port, timeout=timeout, context=context)
    else:
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request(method, path, body=data, headers=hdrs)
        r = conn.getresponse()
        payload = r.read()
        return Response(r.status, r.reason, r.headers, payload, time.monotonic() - t0)
    finally:
        conn.close()


def _children(pid):
    """Pids of the direct children of pid (all threads), from /proc."""
    out = []
    try:
        tasks = os.listdir("/proc/%d/task" % pid)
    except OSError:
        return out
    for t in tasks:
        try:
            with open("/proc/%d/task/%s/children" % (pid, t)) as f:
                out.extend(int(x) for x in f.read().split())
        except OSError:
            pass
    return out


def _comm(pid):
    try:
        with open("/proc/%d/comm" % pid) as f:
            return f.read().strip()
    except OSError:
        return ""


def _cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().replace(b"\0", b" ").decode("utf-8", "replace")
    except OSError:
        return ""


def _alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except (OSError, IndexError):
        return False


class Gateway:
    """A `tsunagu serve` process (see the module comment)."""

    def __init__(self, binary, data_dir=None, env=None, keep_dir=False, auth=False, tls=None):
        self.binary = os.path.abspath(binary)
        self.auth = auth
        self.tls = tls
        self._own_dir = data_dir is None
        self._tmp = tempfile.mkdtemp(prefix="tsg-it-")
        self.data_dir = data_dir or os.path.join(self._tmp, "data")
        self.keep_dir = keep_dir
        self.extra_env = dict(env or {})
        self.proc = None
        self.port = None
        self.base = None
        self.log_path = None
        self._logs = []  # every log file of this object (one per start)
        self._redis_seen = set()  # redis-server pids seen, to reap orphans at the end
        self._stopped_pids = set()  # pids we SIGSTOPped (SIGCONT them before stopping)

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self, timeout=60):
        env = dict(os.environ)
        env.pop("TSUNAGU_CONFIG", None)
        env.update({"TSUNAGU_LISTEN": "127.0.0.1:0", "TSUNAGU_DATA_DIR": self.data_dir})
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1")
        env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
        env["TSUNAGU_AUTH"] = "on" if self.auth else "off"
        env.update(self.extra_env)
        self.log_path = os.path.join(self._tmp, "gateway-%d.log" % len(self._logs))
        self._logs.append(self.log_path)
        log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([self.binary, "serve"], stdin=subprocess.DEVNULL,
                                     stdout=log, stderr=subprocess.STDOUT, env=env)
        log.close()
        deadline = time.monotonic() + timeout
        self.port = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("tsunagu serve exited with %s:\n%s"
                                   % (self.proc.returncode, self.log_tail()))
            text = self.log()
            i = text.find("listening on ")
            if i >= 0:
                j = text.find("(port ", i)
                k = text.find(")", j)
                if j > 0 and k > j:
                    self.port = int(text[j + 6:k])
                    break
            time.sleep(0.05)
        if not self.port:
            self.kill9()
            raise RuntimeError("tsunagu serve did not start listening in %ss:\n%s"
                               % (timeout, self.log_tail()))
        self.base = "%s://127.0.0.1:%d" % ("https" if self.tls else "http", self.port)
        if not self.wait_ready(max(1.0, deadline - time.monotonic())):
            self.kill9()
            raise RuntimeError("/readyz did not answer 200 in %ss:\n%s" % (timeout, self.log_tail()))
        self.redis_pid()
        return self

    def wait_ready(self, timeout=30):
        """Polls /readyz until 200 (True) or timeout (False)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.request("GET", "/readyz", timeout=5).status == 200:
                    return True
            except (OSError, http.client.HTTPException):
                pass
            if self.proc.poll() is not None:
                return False
            time.sleep(0.1)
        return False

    def restart(self, timeout=60):
        """Starts again on the same data dir (the previous process must be gone)."""
        if self.proc and self.proc.poll() is None:
            raise RuntimeError("restart while the gateway still runs")
        return self.start(timeout)

    def _resume_stopped(self):
        for pid in list(self._stopped_pids):
            try:
                os.kill(pid, signal.SIGCONT)
            except OSError:
                pass
        self._stopped_pids.clear()

    def stop(self, timeout=30):
        """SIGTERM, wait up to timeout, then SIGKILL. Returns the exit status. Raises
        AssertionError when the log holds a sanitizer report."""
        self._resume_stopped()
        rc = None
        if self.proc and self.proc.poll() is None:
            self.redis_pid()
            self.proc.send_signal(signal.SIGTERM)
            try:
                rc = self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                rc = self.proc.wait()
        elif self.proc:
            rc = self.proc.returncode
        self.check_sanitizers()
        return rc

    def kill9(self):
        """Kills the gateway with SIGKILL (a crash) and reaps it."""
        if self.proc and self.proc.poll() is None:
            self.redis_pid()
            self.proc.kill()
            self.proc.wait()

    def close(self):
        """Stops everything and removes the temp dir; never raises except for sanitizer
        reports (AssertionError)."""
        try:
            self.stop()
        finally:
            self._reap_redis()
            if not self.keep_dir:
                shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self):
        if not self.proc:
            self.start()
        return self

    def __exit__(self, et, ev, tb):
        if et is not None and et is not Skip:
            self.print_logs()
        try:
            self.close()
        except AssertionError:
            if et is None:
                raise
        return False

    def _reap_redis(self, timeout=15):
        """Waits for redis-servers this gateway ran to exit (they get SIGTERM when the gateway
        dies and fsync first); SIGKILLs any still there after timeout."""
        deadline = time.monotonic() + timeout
        for pid in self._redis_seen:
            while _alive(pid) and "redis-server" in (_comm(pid) + _cmdline(pid)) \
                    and time.monotonic() < deadline:
                time.sleep(0.05)
            if _alive(pid) and self.data_dir in _cmdline(pid):
                try:
                    os.kill(pid, signal.SIGCONT)
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass

    # -- introspection -----------------------------------------------------------------------

    def pid(self):
        return self.proc.pid if self.proc else None

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def redis_pid(self):
        """The pid of the embedded redis-server child of the running gateway, or None."""
        if not self.alive():
            return None
        for c in _children(self.proc.pid):
            if "redis-server" in _comm(c) or "redis-server" in _cmdline(c):
                if _alive(c):
                    self._redis_seen.add(c)
                    return c
        return None

    def wait_redis_pid(self, timeout=15, other_than=None):
        """Waits until a redis-server child (different from other_than) runs; its pid or None."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            p = self.redis_pid()
            if p and p != other_than:
                return p
            time.sleep(0.05)
        return None

    def sigstop_redis(self):
        """Freezes the redis-server child (SIGSTOP); stop() resumes it. Returns its pid."""
        p = self.redis_pid()
        if not p:
            raise RuntimeError("no redis-server child")
        os.kill(p, signal.SIGSTOP)
        self._stopped_pids.add(p)
        return p

    def sigcont_redis(self, pid):
        os.kill(pid, signal.SIGCONT)
        self._stopped_pids.discard(pid)

    def log(self, path=None):
        try:
            with open(path or self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except (OSError, TypeError):
            return ""

    def all_logs(self):
        return "".join(self.log(p) for p in self._logs)

    def log_tail(self, n=40):
        return "\n".join(self.log().splitlines()[-n:])

    def redis_log_tail(self, n=20):
        """The last lines of the embedded redis-server's log (redis.log in the data dir)."""
        return "\n".join(self.log(os.path.join(self.data_dir, "redis.log")).splitlines()[-n:])

    def print_logs(self, n=30):
        """Prints the tails of the gateway's and redis-server's logs (for a failing test)."""
        print("--- gateway log (%s), last %d lines ---\n%s" % (self.log_path, n, self.log_tail(n)))
        red = self.redis_log_tail(n // 2)
        if red:
            print("--- redis.log, last %d lines ---\n%s" % (n // 2, red))
        print("---", flush=True)

    def check_sanitizers(self):
        """Raises AssertionError with the report when any log of this gateway holds one."""
        for p in self._logs:
            rep = sanitizer_report(self.log(p))
            if rep:
                raise AssertionError("sanitizer report in %s:\n%s" % (p, rep))

    # -- HTTP --------------------------------------------------------------------------------

    def request(self, method, path, body=None, headers=None, timeout=30):
        if not self.port:
            raise RuntimeError("the gateway is not started")
        return request(self.port, method, path, body, headers, timeout, context=self.tls)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    # -- Redis and the audit trail -------------------------------------------------------------

    def redis(self, *args):
        return redis_command(os.path.join(self.data_dir, "redis.sock"), *args)

    def _audit_now(self):
        out = []
        for eid, fields in self.redis("XRANGE", "tsg:audit", "-", "+") or []:
            f = dict(zip(fields[::2], fields[1::2]))
            if b"z" in f:  # records packed by the journal's shipper (zstd)
                recs = audit_frames(zstd_unpack(f[b"z"]))
            elif b"r" in f:
                recs = audit_frames(f[b"r"])
            else:  # an entry of the format before the journal: one record as fields
                recs = [dict({k: f.get(k.encode(), b"").decode() for k in AUDIT_TEXTS},
                             s=int(f.get(b"s", b"0")), t=int(eid.split(b"-")[0]) * 1000)]
            for k, r in enumerate(recs):
                r["id"] = "%s-%d" % (eid.decode(), k)
                out.append(r)
        return out

    def audit_records(self, min_count=0, timeout=20, settle=0.6):
        deadline = time.time() + timeout
        recs = self._audit_now()
        while time.time() < deadline:
            if len(recs) >= min_count:
                time.sleep(settle)
                again = self._audit_now()
                if len(again) == len(recs):
                    return recs
                recs = again
            else:
                time.sleep(0.05)
                recs = self._audit_now()
        return recs

    # -- authentication (auth=True) ----------------------------------------------------------

    def admin(self, *args, timeout=60):
        """Runs `tsunagu admin ARGS…` on this gateway's Redis (its data dir or
        TSUNAGU_REDIS_URL); returns (exit status, stdout, stderr)."""
        env = dict(os.environ)
        env.pop("TSUNAGU_CONFIG", None)
        env.update({"TSUNAGU_DATA_DIR": self.data_dir})
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1")
        env.update(self.extra_env)
        p = subprocess.run([self.binary, "admin"] + [str(a) for a in args], env=env,
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
        out, err = p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")
        rep = sanitizer_report(err)
        if rep:
            raise AssertionError("sanitizer report from tsunagu admin:\n" + rep)
        return p.returncode, out, err

    def create_client(self, org="Organization/test", name="test", scope="system/*.cruds",
                      role=None, area=None, jwks=None):
        """Registers a client with the admin command; returns (client_id, client_secret)."""
        args = ["client", "create", "--org", org, "--name", name, "--scope", scope]
        if role:
            args += ["--role", role]
        if area:
            args += ["--area", area]
        if jwks is not None:
            path = os.path.join(self._tmp, "jwks-%d.json" % len(os.listdir(self._tmp)))
            with open(path, "w") as f:
                json.dump(jwks, f)
            args += ["--jwks", path]
        rc, out, err = self.admin(*args)
        assert rc == 0, "admin client create failed (%s): %s" % (rc, err)
        d = json.loads(out)
        return d["client_id"], d["client_secret"]

    def token(self, client_id, secret, scope=None):
        """An access token for the client (POST /auth/token with HTTP Basic)."""
        import base64
        import urllib.parse
        form = {"grant_type": "client_credentials"}
        if scope is not None:
            form["scope"] = scope
        basic = base64.b64encode(("%s:%s" % (urllib.parse.quote(client_id, safe=""),
                                             urllib.parse.quote(secret, safe=""))).encode())
        r = self.request("POST", "/auth/token", urllib.parse.urlencode(form),
                         headers={"Content-Type": "application/x-www-form-urlencoded",
                                  "Authorization": "Basic " + basic.decode()})
        assert r.status == 200, r
        return r.json["access_token"]

    @staticmethod
    def auth_headers(token):
        return {"Authorization": "Bearer " + token}


class Checks:
    """A tiny test runner: run(name, fn) calls fn(), records a failure instead of stopping
    on AssertionError, prints PASS/FAIL/SKIP; finish() prints a summary and returns the exit
    code (0 when everything passed). Raise Skip("why") in a test to skip it."""

    def __init__(self):
        self.failed = []
        self.passed = 0
        self.skipped = []

    def run(self, name, fn, *args):
        t0 = time.monotonic()
        try:
            fn(*args)
        except Skip as e:
            self.skipped.append(name)
            print("SKIP %s: %s" % (name, e), flush=True)
            return
        except Exception as e:  # a test failure or an unexpected error: both fail the test
            import traceback
            self.failed.append(name)
            print("FAIL %s (%.2fs): %s: %s" % (name, time.monotonic() - t0, type(e).__name__, e),
                  flush=True)
            traceback.print_exc()
            return
        self.passed += 1
        print("PASS %s (%.2fs)" % (name, time.monotonic() - t0), flush=True)

    def finish(self):
        print("%d passed, %d failed, %d skipped" % (self.passed, len(self.failed),
                                                    len(self.skipped)))
        if self.failed:
            print("failed: " + ", ".join(self.failed))
        return 1 if self.failed else 0


class Skip(Exception):
    """Raised by a test to be reported as skipped."""
