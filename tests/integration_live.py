#!/usr/bin/env python3
"""Integration tests of browser live view (README "Live view") against one
camera simulator and one vigild: WHEP driven by Debian's chromium (a real
WebRTC peer: connection, decoded frames, frame size, PCMA samples), DELETE
and the viewer count, the refusals (404, 406 for H.265 and B-frames, 415,
401, 403 without the CSRF header, 503 past max_viewers), the fMP4 fallback
checked with ffprobe, the audit rows of a viewing's start and end,
revocation ending a viewing, and recording going on throughout.

Reuses the helpers of tests/integration.py and tests/integration_web.py.
Ends with "N passed, N failed".
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request

import integration
from integration import Camsim, Skip, ffprobe, log, wait_for
from integration_web import PASSWORD, Client, WebVigil, wait_http

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCES = [("hall", "h264", "video"), ("gate", "cam-g711", "video"),
           ("bframes", "h264b", "video"), ("hevc", "h265", "video"),
           ("line", "line-pcma", "audio")]
MAX_VIEWERS = 3


def whep_client(cfg):
    """Runs tests/ui/whep_client.mjs; returns what it printed."""
    p = subprocess.run(["node", os.path.join(HERE, "ui", "whep_client.mjs"), json.dumps(cfg)],
                       capture_output=True, text=True, timeout=90, cwd=os.path.join(HERE, "ui"))
    lines = [l for l in p.stdout.splitlines() if l.startswith("{")]
    assert lines, "whep client printed nothing: %s" % p.stderr[-2000:]
    return json.loads(lines[-1])


class Suite:
    def __init__(self, tmp):
        self.tmp = tmp
        self.cam = Camsim()
        srcs = [(n, self.cam.url(m), k) for n, m, k in SOURCES]
        extra = "[live]\nmax_viewers = %d\nmax_viewers_per_user = 2\n" % MAX_VIEWERS
        port = integration.free_port()
        self.v = WebVigil(os.path.join(tmp, "v"), srcs, "http_listen = 127.0.0.1:%d\n" % port,
                          extra=extra)
        self.v.http_port = port
        self.v.add_user("guard", "security")
        self.v.add_user("night", "security")
        self.v.start()
        wait_http(self.v.http_port)
        self.base = "http://127.0.0.1:%d" % self.v.http_port
        self.admin_token = self.v.ctl("token", "add", "ops", "--perm", "admin").stdout.strip()
        self.live_token = self.v.ctl("token", "add", "wall", "--perm", "live").stdout.strip()
        self.admin = Client(self.v.http_port)
        self.admin.token = self.admin_token
        self.guard = Client(self.v.http_port)
        self.guard.login("guard")
        self.offer = None
        # every source connected and recording before the first test
        for name, _, _ in SOURCES:
            wait_for("%s recording" % name, lambda n=name: self.source(n)["status"] == "recording",
                     30)
        self.segments_at_start = {n: len(self.v.segments(n)) for n, _, _ in SOURCES}

    def close(self):
        if os.environ.get("VIGIL_LIVE_DEBUG"):
            import shutil
            shutil.copy(self.v.logpath, os.environ["VIGIL_LIVE_DEBUG"])
        try:
            code, _ = self.v.stop()
            assert code == 0, "vigild exited %s" % code
        finally:
            self.cam.stop()

    def source(self, name):
        status, body, _ = self.admin.request("GET", "/api/v1/sources/" + name)
        assert status == 200, (status, body)
        return body

    def live(self, client=None):
        status, body, _ = (client or self.admin).request("GET", "/api/v1/live")
        assert status == 200, (status, body)
        return body

    def post_offer(self, source, sdp, headers=None, ctype="application/sdp"):
        """POSTs an SDP offer with raw headers; returns (status, headers, body)."""
        h = {"Content-Type": ctype} if ctype else {}
        h.update(headers if headers is not None else {"Authorization": "Bearer " + self.live_token})
        req = urllib.request.Request("%s/api/v1/sources/%s/whep" % (self.base, source),
                                     data=sdp.encode(), headers=h, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, dict(r.headers), r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read().decode()

    def delete(self, location, token=None):
        req = urllib.request.Request(self.base + location, method="DELETE",
                                     headers={"Authorization": "Bearer " + (token or self.live_token)})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code

    def audit_rows(self, action="live.view"):
        status, body, _ = self.admin.request("GET", "/api/v1/audit?action=%s&limit=500" % action)
        assert status == 200, (status, body)
        return body.get("rows", body.get("entries", []))

    def browser_offer(self):
        """An offer chromium made (video and audio, recvonly), for the
        refusal tests that need no media to flow."""
        if not self.offer:
            out = whep_client({"base": self.base, "source": "nosuch", "audio": True,
                               "auth": {"Authorization": "Bearer " + self.live_token}})
            assert out.get("status") == 404, out
            self.offer = out["offer"]
        return self.offer

    # ---- WHEP with a real browser ----

    def test_a_whep_video_and_pcma_in_chromium(self):
        out = whep_client({"base": self.base, "source": "gate", "audio": True, "seconds": 4,
                           "delete": True, "debug": bool(os.environ.get("VIGIL_LIVE_DEBUG")),
                           "auth": {"Authorization": "Bearer " + self.live_token}})
        self.offer = out.get("offer")
        assert out.get("status") == 201, out
        assert out["content_type"].startswith("application/sdp"), out
        assert out["location"].startswith("/api/v1/whep/"), out
        states = [s["state"] for s in out["steps"]]
        assert "connected" in states, states
        frames = [s.get("framesDecoded", 0) for s in out["steps"] if s["state"] == "connected"]
        assert frames and frames[-1] > frames[0] and frames[-1] >= 25
        last = out["steps"][-1]
        assert (last.get("frameWidth"), last.get("frameHeight")) == (320, 240), last
        assert last.get("audioMime") == "audio/PCMA", last
        samples = [s.get("totalSamplesReceived", 0) for s in out["steps"] if s["state"] == "connected"]
        assert samples[-1] > samples[0] > 0 or samples[-1] > 8000, samples
        log("first frame %s ms after the POST (answer in %s ms)"
            % (out.get("first_frame_ms"), out.get("answer_ms")))
        assert out.get("delete_status") == 200, out
        wait_for("no live viewers", lambda: self.live()["viewers"] == 0, 10)
        sid = out["location"].rsplit("/", 1)[1]
        rows = [r for r in self.audit_rows() if sid in r.get("detail", "")]
        details = sorted(r["detail"] for r in rows)
        assert any("phase=start" in d and "transport=webrtc" in d for d in details), details
        wait_for("the end row", lambda: any(
            "phase=end" in r.get("detail", "") and "reason=closed" in r.get("detail", "")
            for r in self.audit_rows() if sid in r.get("detail", "")), 10)
        assert self.delete(out["location"]) == 404


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("-k", default="")
    args = ap.parse_args()
    integration.BUILD = args.build
    os.environ["ASAN_OPTIONS"] = "fast_unwind_on_malloc=0:" + os.environ.get("ASAN_OPTIONS", "")
    os.environ["LSAN_OPTIONS"] = ("suppressions=%s/lsan.supp:" % HERE) + os.environ.get(
        "LSAN_OPTIONS", "")
    passed = failed = skipped = 0
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="vigil-live-") as tmp:
        suite = Suite(tmp)
        try:
            passed, failed, skipped = integration.run_tests(
                suite, sorted(n for n in dir(Suite) if n.startswith("test_") and args.k in n))
        finally:
            try:
                suite.close()
            except Exception as e:  # a crash at exit is a failure too
                failed += 1
                log("FAIL close: %s" % e)
    log("integration_live: %d passed, %d failed, %d skipped (%.0f s)"
        % (passed, failed, skipped, time.monotonic() - t0))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
