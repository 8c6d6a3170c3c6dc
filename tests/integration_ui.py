#!/usr/bin/env python3
"""End-to-end tests of the browser UI: starts the camera simulator and one
vigild (serving web/ui, time zone Europe/Moscow) shared by the whole suite,
creates the accounts the tests log in with, then runs the node test suite
in tests/ui (playwright-core driving Debian's chromium, one page per test).
The output closes with node's test summary; the exit code is node's.
"""
import argparse
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

import integration
from integration import Camsim, log, wait_for
from integration_web import PASSWORD, WebVigil

UI_DIR = os.path.join(integration.REPO, "web", "ui")
TESTS = os.path.join(integration.REPO, "tests", "ui")


def sources_recording(port, n):
    """True once n sources answer 'recording' (over a fresh admin session)."""
    req = urllib.request.Request("http://127.0.0.1:%d/api/v1/login" % port,
                                 data=json.dumps({"user": "admin", "password": PASSWORD}).encode(),
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            cookie = r.headers["Set-Cookie"].split(";")[0]
        req = urllib.request.Request("http://127.0.0.1:%d/api/v1/sources" % port,
                                     headers={"Cookie": cookie})
        with urllib.request.urlopen(req, timeout=10) as r:
            sources = json.load(r)["sources"]
    except OSError:
        return False
    return sum(s["status"] == "recording" and s["newest"] is not None for s in sources) >= n


def fetch(port, path, headers=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    c.request("GET", path, headers=headers or {})
    r = c.getresponse()
    body = r.read()
    c.close()
    return r.status, {k.lower(): v for k, v in r.getheaders()}, body


def make_gap(v, cam, source):
    """Stops the flaky camera for 4 s so the source's recording has a gap the
    player must cross; returns its wall times {source, start, end} (unix s)."""
    wait_for("2 segments of " + source, lambda: len(v.segments(source)) >= 2, 30)
    down_at = cam.signal(signal.SIGUSR1, "FLAKY down")
    wait_for("the segment in progress finalized", lambda: any(
        integration.parse_time(s["end"]) >= down_at - 1.5 for s in v.segments(source)), 20)
    wait_for("4 s down", lambda: time.time() - down_at >= 4, 5)
    up_at = cam.signal(signal.SIGUSR2, "FLAKY up")

    def after():
        segs = v.segments(source)
        # two segments after the gap, so there is something to play past it
        return len([s for s in segs if integration.parse_time(s["start"]) >= up_at - 1]) >= 2 and segs
    segs = wait_for(source + " recording again", after, 40)
    for a, b in zip(segs, segs[1:]):
        start, end = integration.parse_time(a["end"]), integration.parse_time(b["start"])
        if end - start >= 2:
            return {"source": source, "start": start, "end": end}
    raise AssertionError("no gap in %s: %s" % (source, segs))


def announcement_wavs(tmp):
    """The reference announcement (espeak-ng) and a line's loop: 1 s of
    silence, the announcement, silence up to 20 s (8 kHz mono WAVs)."""
    ref = os.path.join(tmp, "announcement.wav")
    subprocess.run(["espeak-ng", "-v", "ru", "-s", "150", "-w", ref,
                    "Здравствуйте! Ваш разговор записывается для контроля качества."],
                   check=True, stdout=subprocess.DEVNULL)
    line = os.path.join(tmp, "line-announce.wav")
    subprocess.run(["sox", ref, "-r", "8000", "-c", "1", "-b", "16", "-e", "signed", line,
                    "pad", "1", "0", "pad", "0", "20", "trim", "0", "20"], check=True)
    return ref, line


def check_static(port):
    """The UI's files as a browser and an attacker see them."""
    status, h, body = fetch(port, "/")
    assert status == 200 and h["content-type"].startswith("text/html"), (status, h)
    for name, want in [("content-security-policy", "default-src 'self'"),
                       ("content-security-policy", "frame-ancestors 'none'"),
                       ("x-content-type-options", "nosniff"), ("referrer-policy", "no-referrer"),
                       ("cache-control", "no-cache")]:
        assert want in h.get(name, ""), (name, h.get(name))
    assert b"<script>" not in body and b" style=" not in body, "inline script or style in the shell"
    version = json.loads(fetch(port, "/api/v1/ui")[2])["version"]
    assert ("/v/%s/js/app.js" % version).encode() in body
    # every client-side route answers the shell
    for route in ["/login", "/sources/hall-1", "/live", "/calls", "/calls/7", "/holds",
                  "/exports", "/view", "/admin/users", "/admin/tokens", "/admin/sources",
                  "/admin/storage", "/admin/audit", "/admin/destruction-log"]:
        st, hh, b = fetch(port, route)
        assert st == 200 and b == body, route
    # versioned assets are immutable; others revalidate; ETag gives 304
    st, hh, _ = fetch(port, "/v/%s/js/app.js" % version)
    assert st == 200 and "immutable" in hh["cache-control"], hh
    assert hh["content-type"].startswith("text/javascript"), hh
    st, hh2, b = fetch(port, "/v/%s/js/app.js" % version, {"If-None-Match": hh["etag"]})
    assert st == 304 and not b, st
    st, hh, _ = fetch(port, "/v/0000000000000000/css/app.css")
    assert st == 200 and hh["cache-control"] == "no-cache", "an old version is not pinned"
    assert hh["content-type"].startswith("text/css"), hh
    st, hh, _ = fetch(port, "/vendor/uplot/LICENSE")
    assert st == 200 and hh["content-type"].startswith("text/plain"), hh
    # no listing, no traversal, no symlink out of ui_dir, no dot files
    for path, want in [("/css", 404), ("/js/pages", 404), ("/css/", 400), ("/../etc/passwd", 400),
                       ("/%2e%2e/%2e%2e/etc/passwd", 400), ("/js/%2e%2e/%2e%2e/README.md", 400),
                       ("/css%2f..%2f..%2fREADME.md", 400), ("/escape.txt", 404),
                       ("/outside/passwd", 404), ("/.hidden", 404), ("/nope.js", 404),
                       ("/api/v1/nope", 404)]:
        st, hh, b = fetch(port, path)
        assert st == want, (path, st, want)
        assert b"root:" not in b, path


def check_ui_api(port):
    """GET /api/v1/ui and the per-user language, with their error paths."""
    def call(method, path, body=None, cookie=None, csrf=True, lang=None):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        headers = {"Content-Type": "application/json"}
        if cookie:
            headers["Cookie"] = cookie
        if cookie and csrf:
            headers["X-Requested-With"] = "vigil"
        if lang:
            headers["Accept-Language"] = lang
        c.request(method, path, body=json.dumps(body) if body is not None else None,
                  headers=headers)
        r = c.getresponse()
        data = r.read()
        c.close()
        return r.status, json.loads(data) if data else None, r
    st, ui, _ = call("GET", "/api/v1/ui", lang="en-US,en;q=0.9,ru;q=0.8")
    assert st == 200 and ui["language"] == "en" and ui["timezone"] == "Europe/Moscow", ui
    assert ui["min_days"] == 60, ui
    assert call("GET", "/api/v1/ui", lang="de-DE,ru;q=0.5")[1]["language"] == "ru"
    assert call("GET", "/api/v1/ui", lang="de-DE")[1]["language"] == "ru"
    assert call("GET", "/api/v1/me/language")[0] == 401
    st, _, r = call("POST", "/api/v1/login", {"user": "guard", "password": PASSWORD})
    assert st == 200, st
    cookie = r.getheader("Set-Cookie").split(";")[0]
    got = call("GET", "/api/v1/me/language", cookie=cookie)
    assert got[:2] == (200, {"language": None}), got[:2]
    assert call("PUT", "/api/v1/me/language", {"language": "en"}, cookie, csrf=False)[0] == 403
    st, body, _ = call("PUT", "/api/v1/me/language", {"language": "de"}, cookie)
    assert st == 400 and body["error"]["code"] == "invalid_field", body
    assert call("PUT", "/api/v1/me/language", {"lang": "en"}, cookie)[0] == 400
    assert call("GET", "/api/v1/me/language", cookie=cookie)[1] == {"language": None}
    assert call("POST", "/api/v1/logout", None, cookie)[0] == 200


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("files", nargs="*", help="test files of tests/ui to run (default: all)")
    args = ap.parse_args()
    integration.BUILD = args.build
    # vigild under AddressSanitizer with GStreamer (the live view): see tests/lsan.supp
    os.environ["ASAN_OPTIONS"] = "fast_unwind_on_malloc=0:" + os.environ.get("ASAN_OPTIONS", "")
    os.environ["LSAN_OPTIONS"] = ("suppressions=%s/lsan.supp:" % os.path.dirname(
        os.path.abspath(__file__))) + os.environ.get("LSAN_OPTIONS", "")
    if not os.path.isdir(os.path.join(TESTS, "node_modules")):
        log("ui: tests/ui/node_modules is missing: run `make deps` (npm ci in tests/ui)")
        return 1
    with tempfile.TemporaryDirectory(prefix="vigil-ui-") as tmp:
        # an audio line that plays a spoken announcement (espeak-ng) every
        # 20 s, checked against it: a call's announcement detail on its page
        # (tests/ui/review.test.js)
        ann_ref, ann_line = announcement_wavs(tmp)
        cam = Camsim(["--line-wav", "announce=" + ann_line])
        sources = [("hall-1", cam.url("h264"), "video"), ("hall-2", cam.url("h265"), "video"),
                   ("line-1", cam.url("line-pcma"), "audio"), ("gate-1", cam.url("cam-g711"), "video"),
                   ("yard-1", cam.url("flaky"), "video"),
                   # an H.265 camera left out of the transcode ([source] transcode = no):
                   # the player's words, clip and RTSP link (tests/ui/player_window.test.js)
                   ("hall-3", cam.url("h265"), "video")]
        # a copy of the UI with symlinks out of it and a dot file, for check_static
        ui = os.path.join(tmp, "ui")
        shutil.copytree(UI_DIR, ui)
        os.symlink("/etc/passwd", os.path.join(ui, "escape.txt"))
        os.symlink("/etc", os.path.join(ui, "outside"))
        with open(os.path.join(ui, ".hidden"), "w") as f:
            f.write("secret")
        port = integration.free_port()
        # the live wall (tests/ui/live_wall.test.js): room for a 9-tile wall
        # and a reconnecting tile of one user while the server notices the
        # sessions of closed test pages
        live = "[live]\nenabled = yes\nmax_viewers = 64\nmax_viewers_per_user = 16\n"
        # the player's H.265 -> H.264 transcode (tests/ui/playback.test.js)
        live += "[playback]\ntranscode_hevc = yes\ntranscode_max = 2\n"
        # the relay, for the player's RTSP link of an H.265 camera (player_window.test.js)
        live += "[relay]\nrtsp_listen = 127.0.0.1:%d\n" % integration.free_port()
        v = WebVigil(os.path.join(tmp, "v"), sources,
                     "http_listen = 127.0.0.1:%d\nui_dir = %s\ntimezone = Europe/Moscow\n"
                     % (port, ui), extra=live)
        with open(v.conf, "a") as f:  # the last section written is hall-3's
            f.write("transcode = no\n")
        for name, role, srcs in [("admin", "admin", None), ("guard", "security", None),
                                 ("inv", "investigator", None), ("locked", "security", None),
                                 ("qaaud", "auditor", None)]:
            v.add_user(name, role, sources=srcs)
        # contact centre (tests/ui/calls.test.js): desk-1 ties line-1 to the
        # camera hall-1; an auditor (calls + annotate); a PBX token that
        # creates the calls the tests search for and open
        with open(v.conf, "a") as f:
            f.write("[desk desk-1]\nlines = line-1\ncameras = hall-1\n")
        v.add_user("aud", "auditor")
        with open(v.conf, "a") as f:  # the announcement line (announcement_wavs)
            f.write("[source ann-1]\nurl = %s\nkind = audio\nannouncement = %s\n"
                    % (cam.url("line-announce"), ann_ref))
        pbx_token = v.ctl("token", "add", "pbx-ui", "--perm", "pbx").stdout.strip()
        v.start()
        rc = 1
        try:
            wait_for("sources recording", lambda: sources_recording(port, len(sources)), 60, interval=0.5)
            gap = make_gap(v, cam, "yard-1")
            log("ui: a gap of %.1f s in yard-1's recording" % (gap["end"] - gap["start"]))
            check_static(port)
            log("ui: static files, headers, caching and path tricks: ok")
            check_ui_api(port)
            log("ui: /api/v1/ui and /api/v1/me/language with bad input: ok")
            env = dict(os.environ, VIGIL_URL="http://127.0.0.1:%d" % port, VIGIL_PASSWORD=PASSWORD,
                       VIGIL_SCREENSHOTS=os.path.join(integration.REPO, "docs", "screenshots"),
                       VIGIL_BUILD=os.path.abspath(args.build), VIGIL_GAP=json.dumps(gap))
            env["VIGIL_PBX_TOKEN"] = pbx_token  # contact centre
            files = args.files or sorted(f for f in os.listdir(TESTS) if f.endswith(".test.js"))
            rc = subprocess.run(["node", "--test", "--test-concurrency=1"] + files, cwd=TESTS,
                                env=env, timeout=900 * integration.TIMEOUT_SCALE).returncode
        finally:
            code, _ = v.stop()
            cam.stop()
            if rc != 0:
                log("--- vigild log tail ---\n" + v.log_text()[-3000:])
        if code not in (0, None):
            log("ui: vigild exited with %s" % code)
            rc = rc or 1
    return rc


if __name__ == "__main__":
    sys.exit(main())
