#!/usr/bin/env python3
"""Abuse of the listeners against one real vigild recording from the camera
simulator (DESIGN.md invariant 8): a flood of unauthenticated HTTP requests
and of refused RTSP requests adds a few aggregated audit rows, not one each,
draws 429 with Retry-After, leaves authenticated callers and recording
untouched; bodies are not read before authentication; parallel wrong
logins stop at the limit and raise login_attack; X-Forwarded-For is
ignored without trusted_proxies; GET /audit pages.

Reuses the helpers of tests/integration.py. Ends with "N passed, N failed".
"""
import argparse
import concurrent.futures
import http.client
import json
import os
import re
import socket
import sys
import tempfile
import threading
import time
import traceback

import integration
from integration import Camsim, log, parse_time, wait_for
from integration_relay import Rtsp
from integration_web import PASSWORD, WebVigil

FLOOD = 3000
THREADS = 12


def call(port, method, path, headers=None, body=None, conn=None):
    c = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse()
    data = r.read()
    if conn is None:
        c.close()
    return r.status, data, r


def abutting(segs):
    return all(a["end"] == b["start"] for a, b in zip(segs, segs[1:]))


class Suite:
    def __init__(self, tmp):
        self.cam = Camsim()
        self.rtsp_port = integration.free_port()
        self.http_port = integration.free_port()
        self.v = WebVigil(os.path.join(tmp, "main"),
                          [("h264", self.cam.url("h264"), "video"),
                           ("line-pcma", self.cam.url("line-pcma"), "audio")],
                          "http_listen = 127.0.0.1:%d\n" % self.http_port)
        with open(self.v.conf) as f:
            text = f.read()
        text = text.replace("[archive]", "[relay]\nrtsp_listen = 127.0.0.1:%d\n[archive]" %
                            self.rtsp_port, 1)
        with open(self.v.conf, "w") as f:
            f.write(text)
        self.v.add_user("guard", "security")
        self.v.add_user("alice", "admin")
        self.token = self.v.ctl("token", "add", "ops", "--perm", "admin").stdout.strip()
        self.before_id = self.last_audit_id()
        self.v.start()
        wait_for("h264 recording", lambda: len(self.v.segments("h264")) >= 2, 40)
        wait_for("the HTTP server", self.http_up, 30)
        self.refused = 0  # refusals the tests caused, to find in the aggregated rows

    def close(self):
        self.v.stop()
        self.cam.stop()

    def http_up(self):
        try:
            return call(self.http_port, "GET", "/healthz")[0] == 200
        except OSError:
            return False

    def last_audit_id(self):
        rows = json.loads(self.v.ctl("audit", "list", "--json").stdout)
        return rows[-1]["id"] if rows else 0

    def auth(self):
        return {"Authorization": "Bearer " + self.token}

    # -- item 2: a flood of unauthenticated requests
    def test_http_flood(self):
        segs_before = self.v.segments("h264")
        statuses = {}
        retry_after_ok = [True]
        lock = threading.Lock()
        done = threading.Event()
        authed = []

        def flood(n):
            conn = http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=30)
            mine = {}
            for i in range(n):
                # no credentials, a wrong token, a wrong cookie: all the same to the limiter
                h = [{}, {"Authorization": "Bearer vgt_wrong"},
                     {"Cookie": "vigil_session=" + "0" * 64}][i % 3]
                try:
                    s, _, r = call(self.http_port, "GET", "/api/v1/sources", h, conn=conn)
                except (http.client.HTTPException, OSError):
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=30)
                    s, _, r = call(self.http_port, "GET", "/api/v1/sources", h, conn=conn)
                mine[s] = mine.get(s, 0) + 1
                if s == 429 and not (r.getheader("Retry-After") or "").isdigit():
                    retry_after_ok[0] = False
            conn.close()
            with lock:
                for k, v in mine.items():
                    statuses[k] = statuses.get(k, 0) + v

        def authenticated():
            while not done.is_set():
                t0 = time.monotonic()
                s, body, _ = call(self.http_port, "GET", "/api/v1/sources", self.auth())
                authed.append((s, time.monotonic() - t0))

        watcher = threading.Thread(target=authenticated)
        watcher.start()
        t0 = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(THREADS) as ex:
            list(ex.map(flood, [FLOOD // THREADS] * THREADS))
        took = time.monotonic() - t0
        done.set()
        watcher.join()
        total = sum(statuses.values())
        self.refused += total
        lat = sorted(d for _, d in authed)
        log("  %d unauthenticated requests in %.1f s: %s; %d authenticated ones meanwhile "
            "(median %.1f ms, for information)" % (total, took, statuses, len(authed),
                                                  1000 * lat[len(lat) // 2] if lat else 0))
        assert total == FLOOD // THREADS * THREADS
        assert set(statuses) <= {401, 429}, statuses
        assert statuses.get(429, 0) > total // 2, statuses
        assert retry_after_ok[0], "a 429 without a numeric Retry-After"
        assert authed and all(s == 200 for s, _ in authed), [s for s, _ in authed if s != 200]
        # recording went on: new segments, and no gap across the flood
        segs = wait_for("2 more segments", lambda: (lambda s: len(s) >= len(segs_before) + 2
                                                    and s)(self.v.segments("h264")), 30)
        assert abutting(segs), "a gap in h264: %s" % [(a["end"], b["start"]) for a, b in
                                                      zip(segs, segs[1:]) if a["end"] != b["start"]]

    # -- item 2: bodies are not read before authentication
    def test_no_body_before_auth(self):
        s = socket.create_connection(("127.0.0.1", self.http_port), 10)
        s.sendall(b"POST /api/v1/users HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 900000\r\n\r\n{\"name\":")
        s.settimeout(10)  # the answer comes without the body; this only bounds a failure
        head = b""
        while b"\r\n" not in head:
            chunk = s.recv(4096)
            if not chunk:
                break
            head += chunk
        s.close()
        self.refused += 1
        assert re.match(rb"HTTP/1\.1 (401|429) ", head), head[:80]

    # -- item 2: refused RTSP requests
    def test_rtsp_refusals(self):
        n = 0
        for _ in range(4):
            c = Rtsp(self.rtsp_port, "h264", auth="Bearer vgt_wrong-token")
            try:
                for _ in range(50):
                    status, _, _ = c.request("DESCRIBE")
                    assert status == 401, status
                    n += 1
            finally:
                c.close()
        self.refused += n

    # -- item 8: parallel wrong logins, the alarm, X-Forwarded-For ignored
    def test_parallel_logins(self):
        def wrong(i):
            body = json.dumps({"user": "guard", "password": "wrong-password-%d" % i})
            return call(self.http_port, "POST", "/api/v1/login",
                        {"Content-Type": "application/json",
                         "X-Forwarded-For": "10.5.0.%d" % (i + 1)}, body)[0]
        with concurrent.futures.ThreadPoolExecutor(20) as ex:
            results = list(ex.map(wrong, range(20)))
        checked = results.count(401)
        log("  20 parallel wrong logins: %d reached the password check, %d refused" %
            (checked, results.count(429)))
        assert checked + results.count(429) == 20, results
        assert 1 <= checked <= 5, results
        self.refused += results.count(429)
        # no trusted_proxies: the header was ignored, 127.0.0.1 has had its tries
        body = json.dumps({"user": "alice", "password": PASSWORD})
        s, _, r = call(self.http_port, "POST", "/api/v1/login",
                       {"Content-Type": "application/json", "X-Forwarded-For": "10.4.4.4"}, body)
        assert s == 429 and r.getheader("Retry-After"), s
        self.refused += 1
        # the alarm, in all three places
        s, storage, _ = call(self.http_port, "GET", "/api/v1/storage", self.auth())
        assert s == 200
        assert any(a["kind"] == "login_attack" for a in json.loads(storage)["alarms"]), storage
        status = json.loads(self.v.ctl("status", "--json").stdout)
        assert any(a["kind"] == "login_attack" for a in status["alarms"]), status["alarms"]
        s, metrics, _ = call(self.http_port, "GET", "/metrics")
        assert s == 200 and b'vigil_alarm{kind="login_attack"' in metrics

    # -- item 2: GET /audit is capped and pages
    def test_audit_paging(self):
        s, _, _ = call(self.http_port, "GET", "/api/v1/audit?limit=10001", self.auth())
        assert s == 400
        s, body, _ = call(self.http_port, "GET", "/api/v1/audit?limit=1", self.auth())
        page = json.loads(body)
        assert s == 200 and len(page["rows"]) == 1 and page["next"] == page["rows"][0]["id"]
        s, body, _ = call(self.http_port, "GET", "/api/v1/audit?limit=1&after=%d" % page["next"],
                          self.auth())
        assert s == 200 and json.loads(body)["rows"][0]["id"] > page["next"]

    def after_stop(self):
        """What the refusals left, once vigild has written its last minute."""
        rows = [r for r in json.loads(self.v.ctl("audit", "list", "--json").stdout)
                if r["id"] > self.before_id]
        denied = [r for r in rows if re.search(r"\bcount=\d+", r["detail"])]
        counted = sum(int(re.search(r"\bcount=(\d+)", r["detail"]).group(1)) for r in denied)
        log("  %d refusals -> %d audit rows in all (%d aggregated, counting %d)" %
            (self.refused, len(rows), len(denied), counted))
        assert len(rows) <= 60, "%d rows for %d refusals" % (len(rows), self.refused)
        assert counted >= self.refused, (counted, self.refused)
        assert any(r["action"] == "relay.access" for r in denied), denied
        assert "intact" in self.v.ctl("audit", "verify").stdout


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("-k", default="")
    args = ap.parse_args()
    integration.BUILD = args.build
    os.environ["ASAN_OPTIONS"] = "fast_unwind_on_malloc=0:" + os.environ.get("ASAN_OPTIONS", "")
    os.environ["LSAN_OPTIONS"] = ("suppressions=%s/lsan.supp:" % os.path.dirname(
        os.path.abspath(__file__))) + os.environ.get("LSAN_OPTIONS", "")
    passed = failed = 0
    with tempfile.TemporaryDirectory(prefix="vigil-abuse-") as tmp:
        suite = Suite(tmp)
        try:
            # the flood first, the logins (which throttle 127.0.0.1) last
            order = ["test_no_body_before_auth", "test_http_flood", "test_rtsp_refusals",
                     "test_audit_paging", "test_parallel_logins"]
            for name in [n for n in order if args.k in n]:
                t0 = time.monotonic()
                try:
                    getattr(suite, name)()
                    passed += 1
                    log("PASS %s (%.1f s)" % (name, time.monotonic() - t0))
                except Exception:
                    failed += 1
                    log("FAIL %s (%.1f s)\n%s" % (name, time.monotonic() - t0,
                                                  traceback.format_exc()))
            rc, took = suite.v.stop()
            if rc == 0:
                passed += 1
                log("PASS clean shutdown (%.1f s)" % took)
            else:
                failed += 1
                log("FAIL clean shutdown: exit %s after %.1f s" % (rc, took))
            if not args.k:
                try:
                    suite.after_stop()
                    passed += 1
                    log("PASS refusals aggregated, chain intact")
                except Exception:
                    failed += 1
                    log("FAIL refusals aggregated\n%s" % traceback.format_exc())
        finally:
            suite.close()
            if failed:
                log("--- vigild log tail ---\n" + suite.v.log_text()[-3000:])
                log("--- camera simulator stderr tail ---\n" + suite.cam.err_tail())
    log("integration_abuse: %d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
