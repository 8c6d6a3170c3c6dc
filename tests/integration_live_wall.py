#!/usr/bin/env python3
"""The live wall across a vigild restart: one camera, one vigild, one
headless chromium page showing /live with one tile over WebRTC
(tests/ui/live_restart.mjs). vigild is stopped and started again on the same
port and data; the tile must reconnect by itself (new WHEP session, the
picture moving again) without a reload. Its own small suite because the
shared browser suite cannot restart its vigild.
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

import integration
from integration import Camsim, log, wait_for
from integration_ui import sources_recording
from integration_web import PASSWORD, WebVigil

UI_DIR = os.path.join(integration.REPO, "web", "ui")
TESTS = os.path.join(integration.REPO, "tests", "ui")


def read_line(p, prefix, timeout):
    """The next line of p's stdout, which must start with prefix."""
    t0 = time.monotonic()
    line = p.stdout.readline().strip()
    if not line.startswith(prefix):
        raise AssertionError("expected %s from the page, got %r after %.0f s" %
                             (prefix, line, time.monotonic() - t0))
    log("live wall: %s after %.1f s" % (prefix, time.monotonic() - t0))
    return line.split(" ", 1)[1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    args = ap.parse_args()
    integration.BUILD = args.build
    # vigild under AddressSanitizer with GStreamer (the live view): see tests/lsan.supp
    os.environ["ASAN_OPTIONS"] = "fast_unwind_on_malloc=0:" + os.environ.get("ASAN_OPTIONS", "")
    os.environ["LSAN_OPTIONS"] = ("suppressions=%s/lsan.supp:" % os.path.dirname(
        os.path.abspath(__file__))) + os.environ.get("LSAN_OPTIONS", "")
    if not os.path.isdir(os.path.join(TESTS, "node_modules")):
        log("live wall: tests/ui/node_modules is missing: run `make deps`")
        return 1
    t_start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="vigil-live-wall-") as tmp:
        cam = Camsim()
        port = integration.free_port()
        v = WebVigil(os.path.join(tmp, "v"), [("hall-1", cam.url("h264"), "video")],
                     "http_listen = 127.0.0.1:%d\nui_dir = %s\n" % (port, UI_DIR),
                     extra="[live]\nenabled = yes\n")
        v.add_user("guard", "security")
        v.add_user("admin", "admin")  # sources_recording asks as admin
        v.start()
        page = None
        rc = 1
        try:
            wait_for("hall-1 recording", lambda: sources_recording(port, 1), 60, interval=0.5)
            env = dict(os.environ, VIGIL_URL="http://127.0.0.1:%d" % port, VIGIL_PASSWORD=PASSWORD)
            page = subprocess.Popen(["node", "live_restart.mjs"], cwd=TESTS, env=env, text=True,
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE)
            first = read_line(page, "PLAYING", 90)
            log("live wall: the tile plays over WebRTC (%s)" % first)
            code, secs = v.stop()
            assert code == 0, "vigild stopped with %s" % code
            v.start()
            log("live wall: vigild restarted (stopped in %.1f s)" % secs)
            page.stdin.write("restart\n")
            page.stdin.flush()
            second = read_line(page, "RECONNECTED", 120)
            assert second != first, (first, second)
            log("live wall: the tile reconnected by itself (%s) and plays" % second)
            assert page.wait(timeout=30) == 0, "the page script failed"
            rc = 0
        except Exception as e:  # noqa: BLE001: reported, then the suite fails
            log("FAIL live wall across a restart: %s" % e)
        finally:
            if page and page.poll() is None:
                page.kill()
                page.wait()
            code, _ = v.stop()
            cam.stop()
            if rc:
                log("--- vigild log tail ---\n" + v.log_text()[-3000:])
            if code not in (0, None):
                log("live wall: vigild exited with %s" % code)
                rc = 1
    log("live wall: %s in %.0f s" % ("PASS" if rc == 0 else "FAIL", time.monotonic() - t_start))
    return rc


if __name__ == "__main__":
    sys.exit(main())
