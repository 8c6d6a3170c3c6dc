#!/usr/bin/env python3
"""Abuse benchmark (DESIGN.md invariant 8): wrk floods GET /api/v1/sources
with no credentials at full speed while vigild records N cameras from the
camera simulator and an authenticated client (an API token, its own wrk)
keeps asking the same route. Reports the audit rows the flood added (once
vigild has stopped and written its last minute), the authenticated p99
with and without the flood, the flood's answers, and the recording gaps
(consecutive segments of a source that do not abut; must be 0).

usage: bench_flood.py [--build DIR] [--results FILE] [--seconds N] [--cameras N]
"""
import argparse
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
import integration  # noqa: E402  (the camera simulator's wrapper)

SECTION = "## Abuse flood (bench/bench_flood.py)"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wrk(url, seconds, threads, conns, token=None):
    args = ["wrk", "-t%d" % threads, "-c%d" % conns, "-d%ds" % seconds, "--latency"]
    if token:
        args += ["-H", "Authorization: Bearer " + token]
    return subprocess.Popen(args + [url], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def wrk_result(p):
    out, err = p.communicate()
    if p.returncode != 0:
        raise SystemExit("wrk failed: %s" % err)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    p99 = re.search(r"\s99%\s+([\d.]+)(us|ms|s)\b", out)
    p50 = re.search(r"\s50%\s+([\d.]+)(us|ms|s)\b", out)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: (.*)", out)
    return {"rps": rps, "total": total,
            "p99_ms": float(p99.group(1)) * scale[p99.group(2)],
            "p50_ms": float(p50.group(1)) * scale[p50.group(2)],
            "non2xx": int(non2xx.group(1)) if non2xx else 0,
            "socket_errors": sock.group(1) if sock else "none"}


def wait_url(url, timeout=30):
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                return r.read()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def audit_rows(db):
    c = sqlite3.connect(db)
    try:
        return c.execute("SELECT COUNT(*) FROM audit").fetchone()[0]
    finally:
        c.close()


def segments(ctl, source):
    p = subprocess.run(ctl + ["segments", source, "--json"], capture_output=True, text=True)
    return json.loads(p.stdout) if p.returncode == 0 else []


def write_section(path, text):
    old = open(path).read() if os.path.exists(path) else "# Benchmark results\n"
    start = old.find(SECTION)
    if start >= 0:
        nxt = old.find("\n## ", start + len(SECTION))
        old = old[:start].rstrip("\n") + ("\n\n" + old[nxt + 1:] if nxt >= 0 else "\n")
    with open(path, "w") as f:
        f.write(old.rstrip("\n") + "\n\n" + text)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--results", default="bench/RESULTS.md")
    ap.add_argument("--seconds", type=int, default=30)
    ap.add_argument("--cameras", type=int, default=8)
    args = ap.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("bench_flood: wrk is not installed (make deps)")
    integration.BUILD = args.build
    root = tempfile.mkdtemp(prefix="vigil-bench-flood-")
    data = os.path.join(root, "data")
    os.makedirs(data)
    cam = integration.Camsim()
    port = free_port()
    conf = os.path.join(root, "vigil.conf")
    with open(conf, "w") as f:
        f.write("[server]\ndata_dir = %s\nlog_level = warning\nhttp_listen = 127.0.0.1:%d\n"
                "[archive]\nsegment_seconds = 2\n" % (data, port))
        for i in range(args.cameras):
            f.write("[source cam%d]\nurl = %s\n" % (i, cam.url("h264")))
    ctl = [os.path.join(args.build, "vigilctl"), "-c", conf]
    token = subprocess.run(ctl + ["token", "add", "bench", "--perm", "live"],
                           capture_output=True, text=True, check=True).stdout.strip()
    log = open(os.path.join(root, "vigild.log"), "w")
    vigild = subprocess.Popen([os.path.join(args.build, "vigild"), "-c", conf], stdout=log,
                              stderr=subprocess.STDOUT)
    url = "http://127.0.0.1:%d/api/v1/sources" % port
    try:
        wait_url("http://127.0.0.1:%d/healthz" % port)
        names = ["cam%d" % i for i in range(args.cameras)]
        deadline = time.monotonic() + 60
        while not all(len(segments(ctl, n)) >= 2 for n in names):
            if time.monotonic() > deadline:
                raise SystemExit("bench_flood: the cameras did not start recording")
            time.sleep(0.5)
        load_before = os.getloadavg()[0]
        # authenticated alone, then with the flood beside it
        base = wrk_result(wrk(url, args.seconds, 1, 4, token))
        rows_before = audit_rows(os.path.join(data, "index.db"))
        flood_p = wrk(url, args.seconds, 2, 64)
        authed_p = wrk(url, args.seconds, 1, 4, token)
        flood, authed = wrk_result(flood_p), wrk_result(authed_p)
        # a little more recording after the flood, so a gap at its end shows
        end_deadline = time.monotonic() + 30
        counts = {n: len(segments(ctl, n)) for n in names}
        while not all(len(segments(ctl, n)) >= counts[n] + 2 for n in names):
            if time.monotonic() > end_deadline:
                break
            time.sleep(0.5)
        load_after = os.getloadavg()[0]
    finally:
        vigild.send_signal(signal.SIGTERM)
        rc = vigild.wait(30)
        cam.stop()
        log.close()
    # vigild wrote the last minute's counts at stop
    rows_added = audit_rows(os.path.join(data, "index.db")) - rows_before
    gaps = 0
    n_segs = 0
    for n in names:
        segs = segments(ctl, n)
        n_segs += len(segs)
        gaps += sum(1 for a, b in zip(segs, segs[1:]) if a["end"] != b["start"])
    verify = subprocess.run(ctl + ["audit", "verify"], capture_output=True, text=True)
    text = (SECTION + "\n\n"
            "wrk -t2 -c64 for %d s against `GET /api/v1/sources` with no credentials (every "
            "answer 401 or 429) while vigild records %d cameras (camera simulator, 2 s segments) "
            "and an authenticated client (wrk -t1 -c4, API token) asks the same route; the "
            "authenticated client alone for %d s before. Machine: %d CPUs, shared; load average "
            "(1 min) %.1f before, %.1f after. vigild exit status %s.\n\n"
            "| measure | result |\n|---|---|\n"
            "| flood requests answered | %d (%.0f/s; non-2xx %d; socket errors %s) |\n"
            "| audit rows added during and after the flood (written by stop) | %d |\n"
            "| authenticated p99 without the flood | %.2f ms (p50 %.2f ms, %.0f req/s) |\n"
            "| authenticated p99 during the flood | %.2f ms (p50 %.2f ms, %.0f req/s, non-2xx %d) |\n"
            "| recording gaps (segments not abutting), %d segments of %d cameras | %d |\n"
            "| `vigilctl audit verify` | %s |\n"
            % (args.seconds, args.cameras, args.seconds, os.cpu_count(), load_before, load_after,
               rc, flood["total"], flood["rps"], flood["non2xx"], flood["socket_errors"],
               rows_added, base["p99_ms"], base["p50_ms"], base["rps"], authed["p99_ms"],
               authed["p50_ms"], authed["rps"], authed["non2xx"], n_segs, args.cameras, gaps,
               verify.stdout.strip().splitlines()[-1] if verify.stdout.strip() else
               "exit %d" % verify.returncode))
    write_section(args.results, text)
    print(text)
    shutil.rmtree(root, ignore_errors=True)
    return 0 if gaps == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
