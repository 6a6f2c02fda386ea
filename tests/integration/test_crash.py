#!/usr/bin/env python3
"""test_crash.py BINARY — the crash test of issue 4 (item 8), against the real `tsunagu serve`
and its embedded redis-server (AOF, appendfsync always):

  (a) several threads stream creates (POST Observation, PUT Patient with client ids);
      `kill -9` the gateway mid-stream; restart it on the same data dir (the embedded Redis of
      the dead gateway may still be shutting down: the new one must cope); every create that
      got a 201 is readable with the same content; a create that got no answer is either
      absent or complete.
  (a2) leftovers of a crash: after kill -9, a redis-server still serving the data dir's socket
      (an orphan, started by hand on the gateway's redis.conf) must be shut down by the new
      gateway, and a stale socket file with no server behind it must not stop a start; all
      201s stay readable.
  (b) `kill -9` the redis-server child mid-stream: the supervisor restarts it; requests in the
      gap get 503 (never a hang, never another status); afterwards every 201 is readable.
  (d) SIGTERM during a stream: exit status 0 (drained, Redis stopped in order, no sanitizer
      or leak report), and every 201 is there after a restart.
  (e) a stream of updates to a few resources, kill -9 of the gateway (e1) and of
      redis-server (e2): every resource's history is a contiguous version chain, every
      acknowledged version reads back as sent, and (when search answers) only the current
      version is indexed.
  (c) when transactions are implemented (POST /fhir with a transaction Bundle answers 200;
      on 501 the part is skipped with a message): a stream of transactions each PUTting a
      Patient and 3 Observations with known ids; kill -9 of the gateway (c1) and of
      redis-server (c2) mid-stream; afterwards every transaction is entirely present or
      entirely absent, and every one answered 200 is present.

Counts are printed. Exit status 0 when every part passed (skipped parts do not fail)."""

import collections
import http.client
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

THREADS = 4
HANG_BOUND_S = 5.0  # no request may take longer than this, Redis down or not
REQUEST_TIMEOUT_S = 20.0  # the client's own bound (a hang is reported, not waited for)


def strip_meta(res):
    return {k: v for k, v in res.items() if k not in ("id", "meta")}


def patient(pid, n):
    return {"resourceType": "Patient", "id": pid, "active": n % 2 == 0,
            "identifier": [{"system": "urn:example:crash", "value": pid}],
            "name": [{"family": "試験%d" % n, "given": ["太郎", "T%d" % n]}],
            "birthDate": "19%02d-0%d-1%d" % (n % 100, n % 9 + 1, n % 10)}


def observation(subject, n, oid=None):
    o = {"resourceType": "Observation", "status": "final",
         "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
         "subject": {"reference": subject},
         "effectiveDateTime": "2024-04-%02dT09:00:00+09:00" % (n % 28 + 1),
         "valueQuantity": {"value": n, "unit": "/min", "system": "http://unitsofmeasure.org",
                           "code": "/min"}}
    if oid:
        o["id"] = oid
    return o


CONN_ERRORS = (ConnectionError, http.client.HTTPException, OSError)


class Stream:
    """Worker threads sending writes until stop(); records what was acknowledged.

    make(thread, n) -> (method, path, body, expect) where expect is a list of (type, id,
    content) the write creates (the id of a POST is taken from Location)."""

    def __init__(self, name, port, make, threads=THREADS):
        self.name = name
        self.port = port
        self.make = make
        self.nthreads = threads
        self.lock = threading.Lock()
        self.acked = []  # (status, [(type, id, content)], t_done)
        self.acked_etag = []  # the ETag of each acked answer (same order)
        self.unanswered = []  # [(type, id, content)] sent without a complete answer
        self.statuses = collections.Counter()
        self.bad = []  # unexpected answers
        self.errors = collections.Counter()
        self.max_latency = 0.0
        self.slow = []
        self.ok_after = {}  # mark -> count of 2xx that finished after mark time
        self._stop = threading.Event()
        self._threads = []

    def start(self):
        for t in range(self.nthreads):
            th = threading.Thread(target=self._work, args=(t,), daemon=True)
            th.start()
            self._threads.append(th)
        return self

    def stop(self):
        self._stop.set()
        for th in self._threads:
            th.join(REQUEST_TIMEOUT_S + 5)

    def acked_count(self):
        with self.lock:
            return len(self.acked)

    def _work(self, t):
        n = 0
        while not self._stop.is_set():
            n += 1
            method, path, body, expect, ok_status = self.make(t, n)
            t0 = time.monotonic()
            try:
                r = harness.request(self.port, method, path, body, timeout=REQUEST_TIMEOUT_S)
            except socket.timeout:
                with self.lock:
                    self.bad.append("%s %s: no answer in %.0fs (hang)"
                                    % (method, path, REQUEST_TIMEOUT_S))
                    self.unanswered.append(expect)
                continue
            except CONN_ERRORS as e:
                with self.lock:
                    self.errors[type(e).__name__] += 1
                    self.unanswered.append(expect)
                time.sleep(0.02)
                continue
            dt = time.monotonic() - t0
            with self.lock:
                self.statuses[r.status] += 1
                self.max_latency = max(self.max_latency, dt)
                if dt > HANG_BOUND_S:
                    self.slow.append("%s %s took %.2fs (%d)" % (method, path, dt, r.status))
                if r.status == ok_status:
                    if method == "POST" and expect and expect[0][1] is None:
                        loc = r.header("Location") or ""
                        parts = loc.split("/_history/")[0].rsplit("/", 1)
                        expect = [(expect[0][0], parts[-1], expect[0][2])]
                    self.acked.append((r.status, expect, time.monotonic()))
                    self.acked_etag.append(r.header("ETag"))
                elif r.status == 503:
                    ok = r.json and r.json.get("resourceType") == "OperationOutcome"
                    if not ok:
                        self.bad.append("503 without an OperationOutcome: %r" % r)
                    self.unanswered.append(expect)
                else:
                    self.bad.append("%s %s -> %r" % (method, path, r))
                    self.unanswered.append(expect)

    def summary(self):
        return ("%s: %d acknowledged, %d without success (statuses %s, connection errors %s), "
                "max latency %.2fs" % (self.name, len(self.acked), len(self.unanswered),
                                       dict(self.statuses), dict(self.errors), self.max_latency))


def mixed_writes(tag):
    """Creates: even n a PUT Patient with a client id, odd n a POST Observation."""
    def make(t, n):
        if n % 2 == 0:
            pid = "%s-%d-%d" % (tag, t, n)
            body = patient(pid, n)
            return "PUT", "/fhir/Patient/" + pid, body, [("Patient", pid, body)], 201
        body = observation("Patient/%s-%d-%d" % (tag, t, n - 1), n)
        return "POST", "/fhir/Observation", body, [("Observation", None, body)], 201
    return make


def read_back(gw, items):
    """items: [(type, id, content)]. Returns (present_ok, absent, wrong[list of messages])."""
    present, absent, wrong = 0, 0, []
    for typ, rid, content in items:
        if rid is None:
            continue
        r = gw.get("/fhir/%s/%s" % (typ, rid), timeout=REQUEST_TIMEOUT_S)
        if r.status == 404:
            absent += 1
        elif r.status == 200:
            if strip_meta(r.json) != strip_meta(content) or r.json["meta"]["versionId"] != "1":
                wrong.append("%s/%s differs: %r" % (typ, rid, r.json))
            else:
                present += 1
        else:
            wrong.append("%s/%s: %r" % (typ, rid, r))
    return present, absent, wrong


def wait_for(pred, timeout, step=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return False


_SEARCH = {}


def search_available(gw):
    """True when token search answers (the search helper's work has landed); cached."""
    if "ok" not in _SEARCH:
        r = gw.get("/fhir/Patient?identifier=urn:example:crash%7Cprobe")
        _SEARCH["ok"] = r.status == 200
        if not _SEARCH["ok"]:
            print("  (search answers %d: index checks skipped)" % r.status, flush=True)
    return _SEARCH["ok"]


def search_ids(gw, query):
    r = gw.get("/fhir/" + query.replace("|", "%7C") + "&_count=100", timeout=REQUEST_TIMEOUT_S)
    assert r.status == 200, "search %s: %r" % (query, r)
    return [e["resource"]["id"] for e in r.json.get("entry", []) if "resource" in e]


def index_query(typ, rid, content):
    """A search that finds exactly this resource through its index entries."""
    if typ == "Patient":
        return "Patient?identifier=urn:example:crash|" + content["identifier"][0]["value"]
    return "Observation?subject=%s&value-quantity=%s" % (content["subject"]["reference"],
                                                          content["valueQuantity"]["value"])


def check_index(gw, items, present):
    """Index entries were written with the resource, atomically: a present resource is found
    by a search on its values, an absent one is not (no index without its resource)."""
    if not search_available(gw):
        return 0
    wrong = []
    for typ, rid, content in items:
        if rid is None:
            continue
        ids = search_ids(gw, index_query(typ, rid, content))
        if present and ids != [rid]:
            wrong.append("%s/%s present but search finds %r" % (typ, rid, ids))
        if not present and ids:
            wrong.append("%s/%s absent but search finds %r" % (typ, rid, ids))
    assert not wrong, "index out of step with the resources:\n" + "\n".join(wrong[:10])
    return len(items)


def verify_acked(gw, st):
    acked = [it for _, items, _ in st.acked for it in items]
    present, absent, wrong = read_back(gw, acked)
    assert not wrong, "acknowledged writes read back wrong:\n" + "\n".join(wrong[:10])
    assert absent == 0, "%d of %d acknowledged creates are missing" % (absent, len(acked))
    # writes without an answer: absent or complete, never different
    unans = [it for items in st.unanswered for it in items if it[1] is not None]
    up, ua, uw = read_back(gw, unans)
    assert not uw, "unanswered writes read back wrong:\n" + "\n".join(uw[:10])
    check_index(gw, acked, True)
    for it in unans:
        r = gw.get("/fhir/%s/%s" % (it[0], it[1]))
        check_index(gw, [it], r.status == 200)
    print("  %s\n  read back: %d acknowledged all present; of %d unanswered PUTs %d present, "
          "%d absent" % (st.summary(), present, len(unans), up, ua), flush=True)
    return present


# ------------------------------------------------------------------------------------------

ROUNDS = 3  # kill -9 rounds of (a) and (c1); each round's writes are checked after every restart


def part_a(binary):
    with harness.Gateway(binary) as gw:
        streams = []
        for rnd in range(ROUNDS):
            st = Stream("(a) kill -9 gateway, round %d" % (rnd + 1), gw.port,
                        mixed_writes("a%d" % rnd)).start()
            streams.append(st)
            want = random.randrange(100, 300)
            assert wait_for(lambda: st.acked_count() >= want, 30), "stream too slow: " + st.summary()
            old_redis = gw.redis_pid()
            gw.kill9()
            killed_at = st.acked_count()
            time.sleep(0.3)
            st.stop()
            assert not st.bad, "unexpected answers:\n" + "\n".join(st.bad[:10])
            t0 = time.monotonic()
            gw.restart()
            print("  round %d: killed after %d acknowledged creates; restarted in %.2fs "
                  "(old redis-server %s)" % (rnd + 1, killed_at, time.monotonic() - t0, old_redis),
                  flush=True)
            assert gw.redis_pid() != old_redis
            verify_acked(gw, st)
        print("  all rounds again after the last restart:", flush=True)
        for s_ in streams[:-1]:
            verify_acked(gw, s_)
        r = gw.request("POST", "/fhir/Observation", observation("Patient/x", 1))
        assert r.status == 201, "create after restart: %r" % r


def part_a2(binary):
    """Leftovers of a crashed gateway (gateway/store/redis.h): a redis-server still running on
    the data dir's socket (an orphan: here started by hand on the gateway's redis.conf, as an
    operator might), then a stale socket file with no server behind it."""
    with harness.Gateway(binary) as gw:
        st = Stream("(a2) leftovers", gw.port, mixed_writes("a2")).start()
        assert wait_for(lambda: st.acked_count() >= 100, 30), "stream too slow: " + st.summary()
        old = gw.redis_pid()
        gw.kill9()
        st.stop()
        assert not st.bad, "unexpected answers:\n" + "\n".join(st.bad[:10])
        assert wait_for(lambda: not harness._alive(old), 15), "redis-server outlived its gateway"
        sock = os.path.join(gw.data_dir, "redis.sock")
        orphan = subprocess.Popen(["redis-server", os.path.join(gw.data_dir, "redis.conf")],
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            assert wait_for(lambda: os.path.exists(sock) and _pings(sock), 15), \
                "the hand-started redis-server does not answer"
            t0 = time.monotonic()
            gw.restart()
            print("  orphan redis-server %d on the socket; new gateway ready in %.2fs"
                  % (orphan.pid, time.monotonic() - t0), flush=True)
            try:
                orphan.wait(15)
            except subprocess.TimeoutExpired:
                raise AssertionError("the orphaned redis-server %d still runs beside the new "
                                     "gateway" % orphan.pid)
            assert gw.redis_pid(), "the new gateway has no redis-server child"
            verify_acked(gw, st)
        finally:
            if orphan.poll() is None:
                orphan.kill()
                orphan.wait()
        r = gw.request("POST", "/fhir/Observation", observation("Patient/x", 1))
        assert r.status == 201, "create after restart: %r" % r
        rid = r.json["id"]
        # a stale socket file: the gateway and its Redis gone, the file left behind
        assert gw.stop() == 0
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(sock)
        s.close()
        assert os.path.exists(sock)
        gw.restart()
        assert gw.get("/fhir/Observation/" + rid).status == 200
        verify_acked(gw, st)


def _pings(path):
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(1)
            s.connect(path)
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def part_b(binary):
    with harness.Gateway(binary) as gw:
        st = Stream("(b) kill -9 redis-server", gw.port, mixed_writes("b")).start()
        assert wait_for(lambda: st.acked_count() >= 200, 30), "stream too slow: " + st.summary()
        old = gw.redis_pid()
        os.kill(old, signal.SIGKILL)
        killed_t = time.monotonic()
        at_kill = st.acked_count()
        new = gw.wait_redis_pid(15, other_than=old)
        assert new, "the supervisor did not restart redis-server:\n" + gw.log_tail()
        assert gw.wait_ready(15), "/readyz not 200 after the restart of redis-server"
        back_t = time.monotonic()
        # the stream must succeed again after Redis is back
        assert wait_for(lambda: sum(1 for _, _, t in list(st.acked) if t > back_t) >= 100, 30), \
            "no creates succeed after redis-server came back: " + st.summary()
        st.stop()
        assert not st.bad, "unexpected answers:\n" + "\n".join(st.bad[:10])
        assert not st.slow, "requests took too long:\n" + "\n".join(st.slow[:10])
        assert not st.errors, "connection errors with the gateway up: %r" % dict(st.errors)
        print("  redis-server %d killed after %d acknowledged creates; %d restarted, ready "
              "after %.2fs; 503s in the gap: %d" % (old, at_kill, new, back_t - killed_t,
                                                   st.statuses[503]), flush=True)
        assert "restarting" in gw.log(), gw.log_tail()
        verify_acked(gw, st)
        # and again after a clean restart of the gateway
        assert gw.stop() == 0
        gw.restart()
        verify_acked(gw, st)


def part_d(binary):
    """SIGTERM during a stream: the gateway stops accepting, answers what it is handling,
    stops its Redis in order and exits 0 (no sanitizer report, no leak); every 201 is there
    after a restart."""
    with harness.Gateway(binary) as gw:
        st = Stream("(d) SIGTERM under load", gw.port, mixed_writes("d")).start()
        assert wait_for(lambda: st.acked_count() >= 200, 30), "stream too slow: " + st.summary()
        redis = gw.redis_pid()
        t0 = time.monotonic()
        rc = gw.stop(timeout=30)
        took = time.monotonic() - t0
        st.stop()
        assert rc == 0, "exit status %r after SIGTERM:\n%s" % (rc, gw.log_tail())
        assert not harness._alive(redis), "redis-server still runs after a clean stop"
        assert not st.bad, "unexpected answers:\n" + "\n".join(st.bad[:10])
        print("  stopped in %.2fs" % took, flush=True)
        gw.restart()
        verify_acked(gw, st)


UPDATE_SET = 4  # resources each thread of (e) keeps updating


def update_writes(tag):
    """Each thread updates its own UPDATE_SET Patients over and over (no conflicts between
    threads); each body has a unique family name so stale index entries are visible."""
    def make(t, n):
        pid = "%s-%d-%d" % (tag, t, n % UPDATE_SET)
        body = patient(pid, n)
        body["name"][0]["family"] = "F%s%dx%d" % (tag, t, n)
        return "PUT", "/fhir/Patient/" + pid, body, [("Patient", pid, body)], 200
    return make


def verify_versions(gw, st, ids):
    """After a crash: every resource's history is a contiguous chain 1..current, every
    acknowledged version reads back as sent, the current version is at least the newest
    acknowledged one, and (with search) only the current version is indexed."""
    acked = collections.defaultdict(dict)  # id -> {version: content}
    for (_, items, _), etag in zip(st.acked, st.acked_etag):
        v = int(etag.split('"')[1])
        acked[items[0][1]][v] = items[0][2]
    checked = 0
    for rid in ids:
        cur = gw.get("/fhir/Patient/" + rid)
        assert cur.status == 200, "%s: %r" % (rid, cur)
        v = int(cur.json["meta"]["versionId"])
        assert v >= max(acked[rid], default=1), (rid, v, sorted(acked[rid]))
        h = gw.get("/fhir/Patient/%s/_history?_count=1000" % rid).json
        vs = [int(e["resource"]["meta"]["versionId"]) for e in h["entry"]]
        assert h["total"] == v and vs == list(range(v, 0, -1)), \
            "%s: current %d, history %r" % (rid, v, vs)
        assert h["entry"][0]["resource"] == cur.json, rid
        for ver, content in acked[rid].items():
            r = gw.get("/fhir/Patient/%s/_history/%d" % (rid, ver))
            assert r.status == 200 and strip_meta(r.json) == strip_meta(content), \
                "%s version %d: %r" % (rid, ver, r)
            checked += 1
        if search_available(gw):
            fam = cur.json["name"][0]["family"]
            assert search_ids(gw, "Patient?family:exact=" + fam) == [rid], (rid, fam)
            for ver, content in acked[rid].items():
                old = content["name"][0]["family"]
                if ver != v and old != fam:
                    assert search_ids(gw, "Patient?family:exact=" + old) == [], \
                        "%s: version %d's name %s is still indexed" % (rid, ver, old)
    print("  %s\n  %d resources: version chains contiguous, %d acknowledged versions read "
          "back" % (st.summary(), len(ids), checked), flush=True)


def part_e(binary, kill_redis):
    """Updates (not creates) under kill -9: no version lost, no gap, no stale index."""
    with harness.Gateway(binary) as gw:
        tag = "e2" if kill_redis else "e1"
        ids = ["%s-%d-%d" % (tag, t, k) for t in range(THREADS) for k in range(UPDATE_SET)]
        for rid in ids:
            b = patient(rid, 0)
            b["name"][0]["family"] = "F%sinit%s" % (tag, rid.replace("-", ""))
            assert gw.request("PUT", "/fhir/Patient/" + rid, b).status == 201
        st = Stream("(e) updates, kill -9 %s" % ("redis-server" if kill_redis else "gateway"),
                    gw.port, update_writes(tag)).start()
        assert wait_for(lambda: st.acked_count() >= 200, 30), "stream too slow: " + st.summary()
        if kill_redis:
            old = gw.redis_pid()
            os.kill(old, signal.SIGKILL)
            assert gw.wait_redis_pid(15, other_than=old), gw.log_tail()
            assert gw.wait_ready(15)
            back_t = time.monotonic()
            assert wait_for(lambda: sum(1 for _, _, t in list(st.acked) if t > back_t) >= 100,
                            30), "no updates succeed after Redis came back: " + st.summary()
            st.stop()
            assert not st.slow, "requests took too long:\n" + "\n".join(st.slow[:10])
        else:
            gw.kill9()
            time.sleep(0.3)
            st.stop()
            gw.restart()
        assert not st.bad, "unexpected answers:\n" + "\n".join(st.bad[:10])
        verify_versions(gw, st, ids)


def tx_bundle(tag):
    def make(t, n):
        base = "%s-%d-%d" % (tag, t, n)
        p = patient(base + "-p", n)
        items = [("Patient", base + "-p", p)]
        entries = [{"resource": p, "request": {"method": "PUT", "url": "Patient/" + base + "-p"}}]
        for k in range(1, 4):
            oid = "%s-o%d" % (base, k)
            o = observation("Patient/" + base + "-p", n * 10 + k, oid)
            items.append(("Observation", oid, o))
            entries.append({"resource": o, "request": {"method": "PUT",
                                                       "url": "Observation/" + oid}})
        return ("POST", "/fhir", {"resourceType": "Bundle", "type": "transaction",
                                  "entry": entries}, items, 200)
    return make


def transactions_available(gw):
    make = tx_bundle("probe-%d" % random.randrange(1 << 30))
    _, _, body, items, _ = make(0, 0)
    r = gw.request("POST", "/fhir", body)
    if r.status == 501:
        return False, "POST /fhir answers 501: %s" % r.body[:200].decode("utf-8", "replace")
    assert r.status == 200, "transaction probe: %r" % r
    assert r.json.get("type") == "transaction-response", r.json
    assert len(r.json.get("entry", [])) == 4, r.json
    present, absent, wrong = read_back(gw, items)
    assert present == 4 and not wrong, (present, absent, wrong)
    return True, ""


def check_all_or_nothing(gw, st):
    whole, none, half = 0, 0, []
    answered = {items[0][1] for _, items, _ in st.acked}
    for items in [i for _, i, _ in st.acked] + st.unanswered:
        p, a, w = read_back(gw, items)
        assert not w, "transaction members differ:\n" + "\n".join(w)
        if p == len(items):
            whole += 1
            check_index(gw, items, True)
        elif a == len(items):
            none += 1
            check_index(gw, items, False)
            assert items[0][1] not in answered, "transaction %s answered 200 but absent" \
                % items[0][1]
        else:
            half.append("%s: %d of %d present" % (items[0][1], p, len(items)))
    assert not half, "half-applied transactions:\n" + "\n".join(half[:10])
    print("  %s\n  transactions: %d complete (%d answered 200), %d absent, 0 half-applied"
          % (st.summary(), whole, len(st.acked), none), flush=True)


def part_c(binary, kill_redis):
    with harness.Gateway(binary) as gw:
        ok, why = transactions_available(gw)
        if not ok:
            raise harness.Skip("transactions not implemented yet (%s)" % why)
        name = "(c2) transactions, kill -9 redis-server" if kill_redis else \
            "(c1) transactions, kill -9 gateway"
        st = Stream(name, gw.port, tx_bundle("c2" if kill_redis else "c1")).start()
        assert wait_for(lambda: st.acked_count() >= 50, 60), "stream too slow: " + st.summary()
        if kill_redis:
            old = gw.redis_pid()
            os.kill(old, signal.SIGKILL)
            assert gw.wait_redis_pid(15, other_than=old), gw.log_tail()
            assert gw.wait_ready(15)
            back_t = time.monotonic()
            assert wait_for(lambda: sum(1 for _, _, t in list(st.acked) if t > back_t) >= 20,
                            30), "no transactions succeed after Redis came back: " + st.summary()
            st.stop()
            assert not st.slow, "requests took too long:\n" + "\n".join(st.slow[:10])
            assert not st.errors, "connection errors with the gateway up: %r" % dict(st.errors)
            assert not st.bad, "unexpected answers:\n" + "\n".join(st.bad[:10])
            check_all_or_nothing(gw, st)
            return
        streams = [st]
        for rnd in range(ROUNDS):
            if rnd:
                st = Stream("%s, round %d" % (name, rnd + 1), gw.port,
                            tx_bundle("c1r%d" % rnd)).start()
                streams.append(st)
                want = random.randrange(20, 80)
                assert wait_for(lambda: st.acked_count() >= want, 60), \
                    "stream too slow: " + st.summary()
            gw.kill9()
            time.sleep(0.3)
            st.stop()
            assert not st.bad, "unexpected answers:\n" + "\n".join(st.bad[:10])
            gw.restart()
            check_all_or_nothing(gw, st)
        for s_ in streams[:-1]:
            check_all_or_nothing(gw, s_)


def main():
    if len(sys.argv) != 2:
        print("usage: test_crash.py PATH/TO/tsunagu", file=sys.stderr)
        return 2
    binary = sys.argv[1]
    checks = harness.Checks()
    checks.run("a_kill_gateway", part_a, binary)
    checks.run("a2_orphaned_redis", part_a2, binary)
    checks.run("b_kill_redis", part_b, binary)
    checks.run("d_sigterm_under_load", part_d, binary)
    checks.run("e1_updates_kill_gateway", part_e, binary, False)
    checks.run("e2_updates_kill_redis", part_e, binary, True)
    checks.run("c1_transactions_kill_gateway", part_c, binary, False)
    checks.run("c2_transactions_kill_redis", part_c, binary, True)
    return checks.finish()


if __name__ == "__main__":
    sys.exit(main())
