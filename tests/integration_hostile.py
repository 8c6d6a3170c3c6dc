#!/usr/bin/env python3
"""Hostile clients against one running vigild that records from the camera
simulator: text that is not UTF-8 over every route (with and without
credentials), TLS versions, CSV formula cells, export files, config file
permissions. vigild must answer every request with a valid status and valid
JSON, never die, and still be recording at the end (a new segment appears
after the attack).

Reuses the helpers of tests/integration.py and tests/integration_web.py.
Ends with "N passed, N failed".
"""
import argparse
import concurrent.futures
import csv
import io
import json
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import warnings

import integration
from integration import Camsim, Skip, free_port, log, wait_for
from integration_web import Client, WebVigil, wait_http

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "fuzz"))
import corpus_request  # noqa: E402  (the fuzz target's seeds, sent over the wire)


def raw_request(port, method, target, headers, body, timeout=30):
    """Sends bytes as given (http.client refuses what is not ASCII) and
    returns (status, headers dict, body bytes)."""
    req = method.encode() + b" " + target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
    for name, value in headers:
        req += name.encode() + b": " + value + b"\r\n"
    if body:
        req += b"Content-Length: %d\r\n" % len(body)
    req += b"\r\n" + body
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(req)
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, sep, rest = data.partition(b"\r\n\r\n")
    assert sep, "no complete answer to %s %r: %r" % (method, target, data[:200])
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    hdrs = {}
    for line in lines[1:]:
        k, _, v = line.partition(b":")
        hdrs[k.strip().lower().decode("latin-1")] = v.strip().decode("latin-1")
    return status, hdrs, rest


def check_answer(what, status, hdrs, body):
    assert 100 <= status <= 599, "%s: status %d" % (what, status)
    if hdrs.get("content-type", "").startswith("application/json"):
        # strict: bytes that are not UTF-8 raise here
        answer = json.loads(body.decode("utf-8"))
        # the fixed 500 is a safety net: reaching it means text went unchecked
        message = answer.get("error", {}).get("message") if isinstance(answer, dict) else None
        assert message != "the answer could not be encoded", "%s: the fallback answer" % what


class Suite:
    def __init__(self, tmp):
        self.tmp = tmp
        self.cam = Camsim()
        self.root = os.path.join(tmp, "main")
        self.port = free_port()
        self.v = WebVigil(self.root, [("cam1", self.cam.url("h264"), "video"),
                                      ("line1", self.cam.url("line-pcma"), "audio")],
                          "http_listen = 127.0.0.1:%d\nhttp_connections_per_ip = 4\n" % self.port)
        self.v.add_user("admin", "admin")
        self.v.add_user("guard", "security", sources="cam1")
        self.token = self.v.ctl("token", "add", "hostile", "--perm", "admin").stdout.strip()
        self.v.start()
        wait_http(self.port)
        # Sessions before the attack: its failed logins throttle new ones.
        self.admin = Client(self.port)
        self.admin.login("admin")
        self.guard = Client(self.port)
        self.guard.login("guard")
        self.api = Client(self.port)
        self.api.token = self.token
        wait_for("a first segment of cam1", lambda: self.v.segments("cam1"), 40)

    def close(self):
        try:
            self.v.stop()
        finally:
            self.cam.stop()

    def alive(self):
        assert self.v.proc.poll() is None, "vigild exited with %s" % self.v.proc.returncode

    def credentials(self, who):
        if who == 1:
            return [("Authorization", ("Bearer " + self.token).encode())]
        if who in (2, 3):
            c = self.admin if who == 2 else self.guard
            return [("Cookie", c.cookie.encode()), ("X-Requested-With", b"vigil")]
        return []

    def test_a_bad_utf8_over_every_route(self):
        reqs = corpus_request.requests()
        # a logout ends the session the others use: those go last
        first, last = [r for r in reqs if not r[2].startswith(b"/api/v1/logout")], \
            [r for r in reqs if r[2].startswith(b"/api/v1/logout")]
        statuses = {}
        lock = threading.Lock()

        def send(req):
            who, method, target, headers, body = req
            what = "%s %r as %d" % (method, target[:80], who)
            status, hdrs, data = raw_request(self.port, method, target,
                                             self.credentials(who) + headers, body)
            check_answer(what, status, hdrs, data)
            with lock:
                statuses[status] = statuses.get(status, 0) + 1

        with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(send, first))
        for r in last:
            send(r)
        log("  %d requests, statuses %s" % (len(reqs), sorted(statuses.items())))
        self.alive()
        # every route was reached with credentials, not only refused
        assert statuses.get(200, 0) > 0 and statuses.get(400, 0) > 0, statuses
        assert self.api.request("GET", "/healthz")[0] == 200
        # the audit trail, full of rows quoting those requests, still serializes
        status, body, _ = self.api.request("GET", "/api/v1/audit?limit=10000")
        assert status == 200 and len(body["rows"]) > 100, (status, len(body["rows"]))
        status, _, _ = self.api.request("GET", "/api/v1/audit?limit=10000&format=csv")
        assert status == 200
        status, hdrs, data = raw_request(self.port, "GET", b"/api/v1/audit?limit=10000&format=csv",
                                         self.credentials(1), b"")
        data.decode("utf-8")  # strict
        listed = json.loads(self.v.ctl("audit", "list", "--json").stdout)
        assert len(listed) >= len(body["rows"]), (len(listed), len(body["rows"]))
        assert "chain intact" in self.v.ctl("audit", "verify").stdout
        self.attack_done = time.time()

    def test_b_hostile_bytes_in_the_audit_trail(self):
        # an unauthenticated request whose target is raw bytes: its denial row
        # quotes the target, and GET /audit shows it (it aborted vigild before)
        status, hdrs, body = raw_request(self.port, "GET", b"/api/v1/sources?\xff\xc0\xaf=1", [],
                                         b"")
        check_answer("raw bytes", status, hdrs, body)
        status, hdrs, body = raw_request(self.port, "GET", b"/healthz?%ff", [], b"")
        assert status == 400, status
        assert "\ufffd" in json.loads(body.decode("utf-8"))["error"]["message"]
        self.alive()

    def test_c_times_out_of_bounds_cannot_widen_a_range(self):
        """A from before 1970 and a to near the end of int64 once made
        to - from wrap negative, so the span limits of clips, exports, WAV
        and timelines let the whole archive through. Times are taken from
        1970 to 9999 only; wide but valid spans get range_too_long."""
        far = ("from=1969-12-31T00:00:00Z&to=9223372036853.9", "from=0&to=9223372036853",
               "from=-1&to=10")
        for path in ("/api/v1/sources/cam1/clip.mp4", "/api/v1/sources/line1/audio.wav",
                     "/api/v1/sources/line1/peaks", "/api/v1/timeline",
                     "/api/v1/sources/cam1/segments", "/api/v1/sources/cam1/playlist.m3u8"):
            for q in far:
                st, body, _ = self.api.request("GET", "%s?%s" % (path, q))
                assert st == 400 and body["error"]["code"] == "invalid_time", (path, q, st, body)
            if path.endswith(".m3u8"):
                continue  # bounded by its number of segments, not its span
            st, body, _ = self.api.request("GET", path + "?from=0&to=253402300799")
            assert st == 400 and body["error"]["code"] == "range_too_long", (path, st, body)
        st, body, _ = self.api.request("GET", "/api/v1/sources/cam1/snapshot.jpg?at=-5")
        assert st == 400, (st, body)
        # the last microsecond of 9999 is still a time: an empty answer
        st, body, _ = self.api.request(
            "GET", "/api/v1/sources/cam1/segments?from=9999-12-30T00:00:00Z"
            "&to=9999-12-31T23:59:59.999999Z")
        assert st == 200 and body["segments"] == [], (st, body)
        n0 = len(self.api.request("GET", "/api/v1/exports")[1]["exports"])
        for frm, to in ((-9000000000000, 9000000000000), ("1969-12-31T00:00:00Z", 9223372036853),
                        (0, 253402300799)):
            st, body, _ = self.api.request("POST", "/api/v1/exports", {
                "sources": ["cam1"], "from": frm, "to": to, "case": "X-1", "reason": "overflow"})
            assert st == 400, (frm, to, st, body)
        assert len(self.api.request("GET", "/api/v1/exports")[1]["exports"]) == n0
        self.alive()

    def test_d_one_address_cannot_hold_every_connection(self):
        """http_connections_per_ip = 4: a fifth connection from 127.0.0.2 is
        closed unanswered while four are open; another address, and the
        machine itself (127.0.0.1), are still served; once the four close,
        127.0.0.2 is served again."""
        def conn_from(addr):
            s = socket.socket()
            s.settimeout(10)
            s.bind((addr, 0))
            s.connect(("127.0.0.1", self.port))
            return s

        def answered(addr):
            s = conn_from(addr)
            try:
                s.sendall(b"GET /api/v1/me HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                return s.recv(100)
            except (ConnectionResetError, BrokenPipeError):
                return b""
            finally:
                s.close()
        held = []
        try:
            for _ in range(4):
                held.append(conn_from("127.0.0.2"))
                held[-1].sendall(b"GET /api/v1/me HTTP/1.1\r\n")  # headers never end
            wait_for("a fifth connection from 127.0.0.2 refused",
                     lambda: answered("127.0.0.2") == b"", 10)
            assert answered("127.0.0.3").startswith(b"HTTP/1.1 401"), "another address"
            st, _, _ = self.api.request("GET", "/api/v1/sources")
            assert st == 200, st
            st, text, _ = self.api.request("GET", "/metrics")
            n = [l for l in text.decode().splitlines()
                 if l.startswith("vigil_http_connections_refused_total ")]
            assert n and int(n[0].split()[1]) >= 1, n
        finally:
            for s in held:
                s.close()
        wait_for("127.0.0.2 served again",
                 lambda: answered("127.0.0.2").startswith(b"HTTP/1.1 401"), 10)
        assert "refusing connections from 127.0.0.2" in self.v.log_text()
        self.alive()

    def test_e_head_is_get_without_the_body(self):
        seg = self.v.segments("cam1")[0]
        q = "from=%s&to=%s" % (seg["start"], seg["end"])
        # (routes whose answer does not move between two requests: /sources
        # carries live bitrates)
        for path in ("/api/v1/me", "/api/v1/sources/cam1/clip.mp4?" + q):
            st, body, r = self.api.request("GET", path)
            assert st == 200, (path, st)
            length = r.getheader("Content-Length")
            c = self.api.conn()
            c.request("HEAD", path, headers={"Authorization": "Bearer " + self.token})
            h = c.getresponse()
            assert h.status == 200 and h.read() == b"", (path, h.status)
            assert h.getheader("Content-Length") == length, (path, h.getheader("Content-Length"),
                                                            length)
            c.close()
        st, body, r = self.api.request("PUT", "/api/v1/sources")
        assert st == 405 and "GET, HEAD" in r.getheader("Allow"), (st, r.getheader("Allow"))

    def test_tls_1_1_refused_1_2_and_1_3_accepted(self):
        root = os.path.join(self.tmp, "tls")
        os.makedirs(root)
        cert, key = os.path.join(root, "cert.pem"), os.path.join(root, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                        "-subj", "/CN=localhost", "-keyout", key, "-out", cert],
                       check=True, capture_output=True)
        port = free_port()
        v = WebVigil(root, [], "http_listen = 127.0.0.1:%d\ntls_cert = %s\ntls_key = %s\n" %
                     (port, cert, key))
        v.start()

        # TLS 1.0 and 1.1 are deprecated in Python's ssl: exactly what is tried here
        warnings.filterwarnings("ignore", category=DeprecationWarning)

        def handshake(port, version_max, version_min=None):
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            # the client's own floor is lowered, so a refusal is the server's
            ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
            ctx.minimum_version = version_min or ssl.TLSVersion.TLSv1
            ctx.maximum_version = version_max
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
                    with ctx.wrap_socket(s) as t:
                        return t.version()
            except (ssl.SSLError, OSError):
                return None

        # a control server that takes TLS 1.0 and 1.1: this client can speak them
        sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        sctx.set_ciphers("DEFAULT:@SECLEVEL=0")
        sctx.minimum_version = ssl.TLSVersion.TLSv1
        sctx.load_cert_chain(cert, key)
        lsock = socket.socket()
        lsock.bind(("127.0.0.1", 0))
        lsock.listen(4)

        def control():
            for _ in range(2):
                conn, _ = lsock.accept()
                try:
                    with sctx.wrap_socket(conn, server_side=True) as t:
                        t.recv(1)
                except (ssl.SSLError, OSError):
                    pass
        th = threading.Thread(target=control, daemon=True)
        th.start()
        try:
            cport = lsock.getsockname()[1]
            got = handshake(cport, ssl.TLSVersion.TLSv1_1)
            if got is None:
                raise Skip("this Python's OpenSSL cannot speak TLS 1.1 at all")
            assert got == "TLSv1.1", got
            wait_http(port, tls=_insecure_ctx())
            assert handshake(port, ssl.TLSVersion.TLSv1_1) is None, "TLS 1.1 was accepted"
            assert handshake(port, ssl.TLSVersion.TLSv1) is None, "TLS 1.0 was accepted"
            assert handshake(port, ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_2) == "TLSv1.2"
            assert handshake(port, ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_3) == "TLSv1.3"
            assert "without TLS" not in v.log_text()
        finally:
            lsock.close()
            v.stop()

    def test_plain_http_on_loopback_draws_no_warning(self):
        # listening beyond loopback is not done in tests; the address rule is
        # in test_web (web_addr_loopback); here: loopback stays quiet
        assert "without TLS" not in self.v.log_text()

    def test_csv_export_neutralizes_formulas(self):
        formulas = ['=HYPERLINK("http://evil.example/","open")', "+1+1", "-2+3", "@SUM(A1)",
                    "\t=1", "\r=1"]
        for i, f in enumerate(formulas):
            status, hold, _ = self.api.request("POST", "/api/v1/holds", {
                "case": "CSV-%d" % i, "reason": "r", "sources": ["cam1"], "from": 1, "to": 2})
            assert status == 201, (status, hold)
            status, body, _ = self.api.request("POST", "/api/v1/holds/%d/release" % hold["id"],
                                               {"reason": f})
            assert status == 200, (status, body)
        status, hdrs, data = raw_request(
            self.port, "GET", b"/api/v1/audit?action=hold.release&limit=10000&format=csv",
            self.credentials(1), b"")
        assert status == 200, status
        rows = list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))
        details = [r[9] for r in rows[1:]]
        for f in formulas:
            assert "'" + f in details, (f, details)
        for r in rows:
            for cell in r:
                assert not cell or cell[0] not in "=+-@\t\r", (cell, r)

    def test_config_readable_by_everyone_with_secrets_warns(self):
        root = os.path.join(self.tmp, "perm")
        os.makedirs(root)
        cert, key = os.path.join(root, "cert.pem"), os.path.join(root, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                        "-subj", "/CN=localhost", "-keyout", key, "-out", cert],
                       check=True, capture_output=True)
        secret = "pw-hostile-9"
        v = WebVigil(root, [("cam", "rtsp://op:%s@127.0.0.1:9/x" % secret, "video")],
                     "http_listen = 127.0.0.1:%d\ntls_cert = %s\ntls_key = %s\n" %
                     (free_port(), cert, key))

        def run_once():
            n = v.log_text().count("recording 1 source") if os.path.exists(v.logpath) else 0
            v.start()
            try:
                wait_for("vigild up", lambda: v.log_text().count("recording 1 source") > n, 20)
            finally:
                assert v.stop()[0] == 0
            return v.log_text()

        os.chmod(v.conf, 0o644)
        os.chmod(key, 0o644)
        text = run_once()
        assert "config %s is readable by every user" % v.conf in text, text[-2000:]
        assert "[source cam] url" in text and "TLS key %s is readable" % key in text, text[-2000:]
        assert secret not in text
        os.chmod(v.conf, 0o640)
        os.chmod(key, 0o600)
        before = text.count("readable by every user")
        text = run_once()
        assert text.count("readable by every user") == before, text[-2000:]

    def test_make_install_config_root_group_0640(self):
        import grp
        dest = os.path.join(self.tmp, "destdir")
        # the vigil group may not exist here: any group other than root's shows the chown
        group = next((g for g in ("nogroup", "daemon", "users") if _group_exists(g)), None)
        p = subprocess.run(["make", "-s", "-C", integration.REPO, "install", "DESTDIR=" + dest,
                            "BUILD=" + os.path.abspath(integration.BUILD),
                            "CONF_GROUP=" + (group or "vigil")],
                           capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, p.stderr
        conf = os.path.join(dest, "etc/vigil/vigil.conf")
        st = os.stat(conf)
        assert st.st_mode & 0o777 == 0o640, oct(st.st_mode)
        if os.getuid() == 0 and group:
            assert st.st_uid == 0 and st.st_gid == grp.getgrnam(group).gr_gid, (st.st_uid,
                                                                                 st.st_gid)
        else:
            assert "chown root:" in p.stdout, p.stdout

    def test_zz_still_recording_after_the_attack(self):
        since = getattr(self, "attack_done", time.time())
        self.alive()

        def new_segment():
            segs = self.v.segments("cam1")
            return any(integration.parse_time(s["start"]) > since for s in segs)
        wait_for("a segment of cam1 started after the attack", new_segment, 30)


    def test_zzz_exits_cleanly(self):
        # under `make asan` a leak or a sanitizer report makes this nonzero
        rc, _ = self.v.stop()
        assert rc == 0, "vigild exited with %s:\n%s" % (rc, self.v.log_text()[-3000:])


def _group_exists(name):
    import grp
    try:
        grp.getgrnam(name)
        return True
    except KeyError:
        return False


def _insecure_ctx():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("-k", default="")
    args = ap.parse_args()
    integration.BUILD = args.build
    passed = failed = skipped = 0
    t_start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="vigil-hostile-") as tmp:
        suite = None
        try:
            suite = Suite(tmp)
            for name in sorted(n for n in dir(Suite) if n.startswith("test_") and args.k in n):
                t0 = time.monotonic()
                try:
                    getattr(suite, name)()
                    passed += 1
                    log("PASS %s (%.1f s)" % (name, time.monotonic() - t0))
                except Skip as e:
                    skipped += 1
                    log("SKIP %s: %s" % (name, e))
                except Exception:
                    failed += 1
                    log("FAIL %s (%.1f s)\n%s" % (name, time.monotonic() - t0,
                                                  traceback.format_exc()))
                    if suite.v.proc.poll() is not None:
                        log("vigild log tail:\n" + suite.v.log_text()[-3000:])
        except Exception:
            failed += 1
            log("FAIL setup\n%s" % traceback.format_exc())
        finally:
            if suite:
                suite.close()
    log("integration_hostile: %d passed, %d failed, %d skipped (%.0f s)" %
        (passed, failed, skipped, time.monotonic() - t_start))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
