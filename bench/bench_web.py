#!/usr/bin/env python3
"""Web API benchmark: GET /api/v1/sources/{name}/segments for a one-hour range
on the 8.64-million-row synthetic index (100 sources x 60 days x 1440
one-minute segments), authenticated with an API token, under wrk with 64
connections on loopback; in the same run, nginx serving the identical JSON
body as a static file. Every vigil request also commits its audit row.

The schema is created by vigilctl (which migrates a fresh index); rows are
bulk-loaded with Python's sqlite3 into that schema. The API runs as
build/bench/webserve: vigild would run crash recovery at start and drop rows
whose files do not exist, and these rows have none.

usage: bench_web.py [--build DIR] [--results FILE] [--seconds N] [--dir D]
"""
import argparse
import os
import re
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import tempfile
import threading
import time
import urllib.request

N_SOURCES = 100
DAYS = 60
SEGS_PER_DAY = 1440
SEG_US = 60 * 1000000
SECTION = "## Web API (bench/bench_web.py)"
DASH_N = 30


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def generate(db_path, end_us, path_of=None):
    """Loads the segment rows into the schema vigilctl created. path_of(name,
    start_us) names each row's file (default: a short name, no file)."""
    path_of = path_of or (lambda name, start: "%s/%d.mp4" % (name, start))
    db = sqlite3.connect(db_path)
    db.execute("PRAGMA synchronous = OFF")
    triggers = db.execute("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'"
                          " AND tbl_name = 'segment'").fetchall()
    # The per-row triggers keep source totals; the load sets them once instead.
    for name, _ in triggers:
        db.execute("DROP TRIGGER %s" % name)
    has_count = any(c[1] == "segments" for c in db.execute("PRAGMA table_info(source)"))
    start_us = end_us - DAYS * SEGS_PER_DAY * SEG_US
    sha = "ab" * 32
    for s in range(N_SOURCES):
        name = "s%03d" % s
        db.execute("INSERT OR IGNORE INTO source(name, kind) VALUES (?, 'video')", (name,))
        sid = db.execute("SELECT id FROM source WHERE name = ?", (name,)).fetchone()[0]
        rows = ((sid, start_us + i * SEG_US, start_us + (i + 1) * SEG_US, SEG_US, 4000000, sha,
                 "h264", 1200, path_of(name, start_us + i * SEG_US))
                for i in range(DAYS * SEGS_PER_DAY))
        db.executemany("INSERT INTO segment(source_id, start_us, end_us, media_us, bytes, sha256,"
                       " codecs, init_bytes, path) VALUES (?,?,?,?,?,?,?,?,?)", rows)
        db.execute("UPDATE source SET max_len_us = ?, bytes = ? WHERE id = ?",
                   (SEG_US, 4000000 * DAYS * SEGS_PER_DAY, sid))
        if has_count:  # schema v4 keeps a segment count beside the bytes
            db.execute("UPDATE source SET segments = ? WHERE id = ?", (DAYS * SEGS_PER_DAY, sid))
    for _, sql in triggers:
        db.execute(sql)
    db.commit()
    n = db.execute("SELECT COUNT(*) FROM segment").fetchone()[0]
    db.close()
    return n


# Every request a different hour (shifted by a minute), so none is answered
# from the cache: the cost of the query and the JSON on every request.
MISS_LUA = """
local n = 0
init = function(args)
  -- each wrk thread starts elsewhere in the cycle (its own Lua state)
  n = tonumber(tostring({}):match("0x(%%x+)"), 16) %% 40000
end
request = function()
  n = n + 1
  local from = %d + (n %% 40000) * 60
  return wrk.format(nil, "/api/v1/sources/s000/segments?from=" .. from .. "&to=" .. (from + 3600))
end
"""


def wrk(url, seconds, token=None, script=None):
    args = ["wrk", "-t2", "-c64", "-d%ds" % seconds, "--latency"]
    if token:
        args += ["-H", "Authorization: Bearer " + token]
    if script:
        args += ["-s", script]
    out = subprocess.run(args + [url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p99 = re.search(r"\s99%\s+([\d.]+)(us|ms|s)\b", out)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: (.*)", out)
    return {"rps": rps, "p99_ms": float(p99.group(1)) * scale,
            "non2xx": int(errors.group(1)) if errors else 0,
            "socket_errors": sock.group(1) if sock else "none", "raw": out}


ROUNDS = 3
WARMUP_S = 3


class FileSizeWatch(threading.Thread):
    """The largest size a file reaches while watched (sampled twice a second)."""

    def __init__(self, path):
        super().__init__(daemon=True)
        self.path, self.largest, self.done = path, 0, threading.Event()

    def run(self):
        while not self.done.wait(0.5):  # sampling period, not a wait for a condition
            try:
                self.largest = max(self.largest, os.stat(self.path).st_size)
            except OSError:
                pass  # not there yet, or just truncated


def median_runs(runs):
    """Median throughput and median p99 over the runs; errors summed."""
    return {"rps": statistics.median(r["rps"] for r in runs),
            "p99_ms": statistics.median(r["p99_ms"] for r in runs),
            "non2xx": sum(r["non2xx"] for r in runs),
            "socket_errors": "; ".join(sorted({r["socket_errors"] for r in runs}))}


def start_nginx(root, port):
    conf = os.path.join(root, "nginx.conf")
    with open(conf, "w") as f:
        f.write("""daemon off;
worker_processes auto;
pid %(r)s/nginx.pid;
error_log %(r)s/nginx-error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path %(r)s/tmp; proxy_temp_path %(r)s/tmp;
    fastcgi_temp_path %(r)s/tmp; uwsgi_temp_path %(r)s/tmp; scgi_temp_path %(r)s/tmp;
    sendfile on; tcp_nopush on; keepalive_requests 1000000;
    server {
        listen 127.0.0.1:%(p)d;
        root %(r)s/www;
        default_type application/json;
    }
}
""" % {"r": root, "p": port})
    os.makedirs(os.path.join(root, "tmp"), exist_ok=True)
    return subprocess.Popen(["nginx", "-c", conf, "-p", root], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)


def wait_url(url, headers=None, timeout=30):
    deadline = time.monotonic() + timeout
    while True:
        try:
            req = urllib.request.Request(url, headers=headers or {})
            with urllib.request.urlopen(req, timeout=5) as r:
                return r.read()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


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
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument("--dir", default=None)
    args = ap.parse_args()
    for tool in ("wrk", "nginx"):
        if not shutil.which(tool):
            raise SystemExit("bench_web: %s is not installed (make deps)" % tool)
    root = args.dir or tempfile.mkdtemp(prefix="vigil-bench-web-")
    data = os.path.join(root, "data")
    os.makedirs(os.path.join(root, "www"), exist_ok=True)
    # nginx's workers run as an unprivileged user: they must reach the file.
    os.chmod(root, 0o755)
    os.makedirs(data, exist_ok=True)
    conf = os.path.join(root, "vigil.conf")
    with open(conf, "w") as f:
        f.write("[server]\ndata_dir = %s\nlog_level = warning\n"
                "[retention]\nmin_days = 60\nkeep_days = 3650\n"
                "[source s000]\nurl = rtsp://127.0.0.1:1/none\n" % data)
    procs = []
    try:
        ctl = [os.path.join(args.build, "vigilctl"), "-c", conf]
        token = subprocess.run(ctl + ["token", "add", "bench", "--perm", "playback"],
                               capture_output=True, text=True, check=True).stdout.strip()
        admin = subprocess.run(ctl + ["token", "add", "dashboard", "--perm", "admin"],
                               capture_output=True, text=True, check=True).stdout.strip()
        end_us = int(time.time()) * 1000000
        t0 = time.monotonic()
        rows = generate(os.path.join(data, "index.db"), end_us)
        gen_s = time.monotonic() - t0
        # The load leaves ~2 GB of dirty pages; written back during the first
        # run, they would stall its fsyncs (the audit commits) for the
        # generator's sake. Flush them before measuring anything.
        os.sync()
        port = free_port()
        procs.append(subprocess.Popen([os.path.join(args.build, "bench", "webserve"), conf,
                                       "127.0.0.1:%d" % port], stdout=subprocess.PIPE, text=True))
        assert procs[-1].stdout.readline().startswith("READY")
        frm = end_us // 1000000 - 30 * 86400
        path = "/api/v1/sources/s000/segments?from=%d&to=%d" % (frm, frm + 3600)
        body = wait_url("http://127.0.0.1:%d%s" % (port, path),
                        {"Authorization": "Bearer " + token})
        with open(os.path.join(root, "www", "segments.json"), "wb") as f:
            f.write(body)
        nport = free_port()
        procs.append(start_nginx(root, nport))
        nbody = wait_url("http://127.0.0.1:%d/segments.json" % nport)
        assert nbody == body
        load_before = os.getloadavg()[0]
        wal = FileSizeWatch(os.path.join(data, "index.db-wal"))
        wal.start()
        # vigil and nginx take turns (ROUNDS short runs each), so a change in
        # what else the machine does hits both; the medians are reported.
        # Unmeasured warm-up of both: first connections, caches, the WAL.
        wrk("http://127.0.0.1:%d%s" % (port, path), WARMUP_S, token)
        wrk("http://127.0.0.1:%d/segments.json" % nport, WARMUP_S)
        rounds = []
        for _ in range(ROUNDS):
            rounds.append((wrk("http://127.0.0.1:%d%s" % (port, path), args.seconds // 2, token),
                           wrk("http://127.0.0.1:%d/segments.json" % nport, args.seconds // 2)))
        v = median_runs([r[0] for r in rounds])
        n = median_runs([r[1] for r in rounds])
        lua = os.path.join(root, "miss.lua")
        with open(lua, "w") as f:
            f.write(MISS_LUA % (frm - 40 * 86400 // 2))
        miss = wrk("http://127.0.0.1:%d/" % port, args.seconds, token, lua)
        # Reference: the same server, token check only, nothing to audit.
        me = wrk("http://127.0.0.1:%d/api/v1/me" % port, args.seconds, token)
        # The storage dashboard (GET /api/v1/storage: capacity, per-source
        # depth and forecast, alarms) one request at a time, as a browser asks.
        dash = []
        for _ in range(DASH_N):
            t = time.monotonic()
            wait_url("http://127.0.0.1:%d/api/v1/storage" % port,
                     {"Authorization": "Bearer " + admin}, timeout=5)
            dash.append((time.monotonic() - t) * 1000)
        dash.sort()
        wal.done.set()
        wal.join()
        load_after = os.getloadavg()[0]
        audit_rows = sqlite3.connect(os.path.join(data, "index.db")).execute(
            "SELECT COUNT(*) FROM audit WHERE action = 'segments.read'").fetchone()[0]
        ratio = statistics.median(a["rps"] / b["rps"] for a, b in rounds)
        per_round = ", ".join("%.0f / %.0f" % (a["rps"], b["rps"]) for a, b in rounds)
        p99_round = ", ".join("%.2f / %.2f" % (a["p99_ms"], b["p99_ms"]) for a, b in rounds)
        text = (SECTION + "\n\n"
                "`GET /api/v1/sources/s000/segments` for a one-hour range (60 segments, %d-byte "
                "JSON body) in the middle of a %s-row index (%d sources x %d days x %d one-minute "
                "segments; generated in %.0f s), Bearer token, each request's audit row committed "
                "before the answer (group commit). wrk -t2 -c64 on loopback; nginx %s "
                "serving the same body as a static file in the same run. Machine: %d CPUs.\n\n"
                "After a %d s unmeasured warm-up of each, vigil and nginx take turns, %d runs of "
                "%d s each; their rows show the median requests/s and the median p99 over the "
                "runs, and the ratio is the median of the per-round ratios (requests/s per "
                "round, vigil / nginx: %s; p99 per round, ms: %s). The other rows are one %d s "
                "run each.\n\n"
                "The same URL again and again is answered from vigil's answer cache (valid while "
                "the source's segment version is unchanged; the access check and the durable "
                "audit row still happen for every request); the `no cache hit` row asks for a "
                "different hour every request, so each one queries the index and builds the "
                "JSON.\n\n"
                "| server | requests/s | p99 latency | non-2xx | socket errors |\n"
                "|---|---|---|---|---|\n"
                "| vigil (webserve, libmicrohttpd) | %.0f | %.2f ms | %d | %s |\n"
                "| vigil, a different hour every request (no cache hit) | %.0f | %.2f ms | %d | %s |\n"
                "| nginx static file | %.0f | %.2f ms | %d | %s |\n"
                "| vigil `GET /api/v1/me` (reference: token check, no query, no audit row) "
                "| %.0f | %.2f ms | %d | %s |\n\n"
                "| target | result | met? |\n|---|---|---|\n"
                "| p99 < 10 ms | %.2f ms | %s |\n"
                "| throughput >= 0.5 x nginx | %.2f x | %s |\n\n"
                "| storage dashboard `GET /api/v1/storage` < 300 ms (%d requests one at a time, "
                "median; max %.1f ms) | %.1f ms | %s |\n\n"
                "Without the cache (every request a miss): %.2f x nginx, p99 %.2f ms.\n\n"
                "Audit rows written for the vigil runs: %d (one per request); the index's WAL "
                "was at most %.0f MiB meanwhile (checkpoints start it over past 32 MiB). "
                "Load average "
                "(1 min) %.1f before and %.1f after the runs: other work on the machine shares "
                "its CPUs and disk, so compare the rows with each other, not across runs.\n"
                % (len(body), format(rows, ","), N_SOURCES, DAYS, SEGS_PER_DAY, gen_s,
                   subprocess.run(["nginx", "-v"], capture_output=True,
                                  text=True).stderr.strip().split("/")[-1],
                   os.cpu_count(), WARMUP_S, ROUNDS, args.seconds // 2, per_round, p99_round,
                   args.seconds, v["rps"], v["p99_ms"], v["non2xx"], v["socket_errors"],
                   miss["rps"], miss["p99_ms"], miss["non2xx"], miss["socket_errors"],
                   n["rps"], n["p99_ms"], n["non2xx"], n["socket_errors"], me["rps"],
                   me["p99_ms"], me["non2xx"], me["socket_errors"], v["p99_ms"],
                   "yes" if v["p99_ms"] < 10 else "no", ratio, "yes" if ratio >= 0.5 else "no",
                   DASH_N, dash[-1], statistics.median(dash),
                   "yes" if statistics.median(dash) < 300 else "no",
                   miss["rps"] / n["rps"] if n["rps"] else 0, miss["p99_ms"],
                   audit_rows, wal.largest / 1048576, load_before, load_after))
        write_section(args.results, text)
        print(text)
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM if p.args[0] != "nginx" else signal.SIGQUIT)
                try:
                    p.wait(20)
                except subprocess.TimeoutExpired:
                    p.kill()
        if not args.dir:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
