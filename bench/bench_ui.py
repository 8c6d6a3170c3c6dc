#!/usr/bin/env python3
"""How long the sources page takes to become interactive after login with
100 sources, on loopback in headless chromium (tests/ui/bench_sources.mjs).
The sources point at a closed port: the page's work (one GET /sources, 100
rows) is the same whether they record or reconnect. Prints the figures and,
with --results, appends them to bench/RESULTS.md. The login POST (one
Argon2id verify) is reported apart.
"""
import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
import integration  # noqa: E402
from integration import wait_for  # noqa: E402
from integration_web import PASSWORD, WebVigil  # noqa: E402

N = 100


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--results")
    args = ap.parse_args()
    integration.BUILD = args.build
    with tempfile.TemporaryDirectory(prefix="vigil-bench-ui-") as tmp:
        port = integration.free_port()
        sources = [("cam-%03d" % i, "rtsp://127.0.0.1:9/cam", "video") for i in range(N)]
        v = WebVigil(os.path.join(tmp, "v"), sources,
                     "http_listen = 127.0.0.1:%d\nui_dir = %s\n"
                     % (port, os.path.join(integration.REPO, "web", "ui")))
        v.add_user("admin", "admin")
        v.start()
        try:
            wait_for("vigild up", lambda: "listening on" in v.log_text(), 30)
            env = dict(os.environ, VIGIL_URL="http://127.0.0.1:%d" % port, VIGIL_PASSWORD=PASSWORD)
            out = subprocess.run(["node", "bench_sources.mjs", str(N), "7"],
                                 cwd=os.path.join(integration.REPO, "tests", "ui"), env=env,
                                 capture_output=True, text=True, timeout=600, check=True).stdout
        finally:
            v.stop()
    r = json.loads(out.strip().splitlines()[-1])
    line = ("| UI: sources page interactive after the login answer, %d sources, headless "
            "chromium (median of %d; the login POST itself: %d ms) | %d ms (max %d) | < 1000 ms | %s |"
            % (N, r["rounds"], r["login_median_ms"], r["median_ms"], r["max_ms"],
               "yes" if r["median_ms"] < 1000 else "no"))
    print(line)
    if args.results:
        with open(args.results, "a") as f:
            f.write("\n## UI (%s)\n\n| what | measured | goal | met |\n|---|---|---|---|\n%s\n"
                    % (datetime.date.today().isoformat(), line))
    return 0


if __name__ == "__main__":
    sys.exit(main())
