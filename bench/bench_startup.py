#!/usr/bin/env python3
"""Startup benchmark: how long vigild takes to become READY, and how much
memory it takes on the way, with the 8.64-million-row index of a full
appliance (100 sources x 60 days x 1440 one-minute segments).

The schema comes from vigilctl; the rows are bulk-loaded with the generator of
bench/bench_web.py, with the paths the archive uses (media/<source>/<day>/
<start>.mp4). The newest RECENT_FILES rows of every source get a file of the
indexed size (sparse: no disk space), as a recording that just stopped would;
older rows have none, so a startup that looked at them would find them all
"missing" - a startup that only repairs what a crash can have touched never
looks. Each run gets its own copy of the generated index.

vigild runs with NOTIFY_SOCKET set to a datagram socket this script listens
on: time to READY is from spawn to the READY=1 datagram. Its 100 sources all
pull the camera simulator's h264 mount (one shared encoder), so they connect
and probe at once. /proc/PID/status is sampled every 50 ms: VmRSS through the
startup and, after every source has recorded for STEADY_S seconds, the steady
VmRSS; VmHWM is the peak.

--before-rev REV also builds REV (git archive into a temporary tree) and runs
its vigild the same way first, stopped at --before-cap-mb of RSS or
--before-timeout seconds, whichever comes first.

usage: bench_startup.py [--build DIR] [--results FILE] [--before-rev REV]
                        [--before-cap-mb N] [--before-timeout S] [--dir D]
"""
import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_web  # noqa: E402  (the 8.64 M-row generator)

SECTION = "## Startup at 8.64 M rows (bench/bench_startup.py)"
N_SOURCES = bench_web.N_SOURCES
SEG_US = bench_web.SEG_US
RECENT_FILES = 20
ROW_BYTES = 4000000
STEADY_S = 30
READY_TIMEOUT_S = 120
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def log(msg):
    print("[startup %s] %s" % (time.strftime("%H:%M:%S"), msg), file=sys.stderr, flush=True)


def archive_path(name, start_us):
    day = time.strftime("%Y-%m-%d", time.gmtime(start_us // 1000000))
    return "media/%s/%s/%d.mp4" % (name, day, start_us)


def make_recent_files(db_path, end_us):
    """The newest RECENT_FILES files of each source, at the indexed size."""
    import sqlite3
    db = sqlite3.connect(db_path)
    data = os.path.dirname(db_path)
    rows = db.execute("SELECT path FROM segment WHERE start_us >= ?",
                      (end_us - RECENT_FILES * SEG_US,)).fetchall()
    db.close()
    for (path,) in rows:
        full = os.path.join(data, path)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "wb") as f:
            f.truncate(ROW_BYTES)
    return len(rows)


def proc_status(pid):
    out = {}
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    out[line.split(":")[0]] = int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return out


def run_vigild(vigild, conf, root, cap_mb=None, timeout=READY_TIMEOUT_S, steady=True):
    sock_path = os.path.join(root, "notify.sock")
    if os.path.exists(sock_path):
        os.unlink(sock_path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(sock_path)
    sock.setblocking(False)
    env = dict(os.environ, NOTIFY_SOCKET=sock_path)
    logf = open(os.path.join(root, "vigild-%d.log" % int(time.time() * 1000)), "w")
    t0 = time.monotonic()
    p = subprocess.Popen([vigild, "-c", conf], stdout=logf, stderr=subprocess.STDOUT, env=env,
                         start_new_session=True)
    res = {"ready_s": None, "peak_startup_mb": 0.0, "killed": None}
    try:
        while time.monotonic() - t0 < timeout:
            st = proc_status(p.pid)
            res["peak_startup_mb"] = max(res["peak_startup_mb"], st.get("VmRSS", 0.0))
            try:
                msg = sock.recv(4096).decode(errors="replace")
                if "READY=1" in msg:
                    res["ready_s"] = time.monotonic() - t0
                    break
            except BlockingIOError:
                pass
            if p.poll() is not None:
                res["killed"] = "exited with %s" % p.returncode
                return res
            if cap_mb and st.get("VmRSS", 0) > cap_mb:
                res["killed"] = "RSS passed %d MB after %.0f s" % (cap_mb, time.monotonic() - t0)
                res["elapsed_s"] = time.monotonic() - t0
                return res
            time.sleep(0.05)
        if res["ready_s"] is None:
            res["killed"] = "no READY within %d s" % timeout
            return res
        res["ready_rss_mb"] = proc_status(p.pid).get("VmRSS", 0.0)
        if steady:
            # Startup ends when every source has connected and recorded a
            # while; the steady figure is after STEADY_S more seconds.
            logpath = logf.name
            deadline = time.monotonic() + 120  # a source still failing is left out
            while time.monotonic() < deadline:
                st = proc_status(p.pid)
                res["peak_startup_mb"] = max(res["peak_startup_mb"], st.get("VmRSS", 0.0))
                with open(logpath) as f:
                    connected = f.read().count(" connected url=")
                if connected >= N_SOURCES:
                    break
                time.sleep(0.05)
            res["connected_s"] = time.monotonic() - t0
            res["connected"] = connected
            samples = []
            end = time.monotonic() + STEADY_S
            while time.monotonic() < end:
                samples.append(proc_status(p.pid).get("VmRSS", 0.0))
                time.sleep(0.5)
            samples.sort()
            res["steady_mb"] = samples[len(samples) // 2]
            res["hwm_mb"] = proc_status(p.pid).get("VmHWM", 0.0)
        return res
    finally:
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        logf.close()
        sock.close()


def build_before(rev, root):
    tree = os.path.join(root, "before-src")
    os.makedirs(tree)
    archive = subprocess.run(["git", "-C", REPO, "archive", rev], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", tree], input=archive.stdout, check=True)
    log("building %s's vigild" % rev)
    subprocess.run(["make", "-C", tree, "-j2", "build/vigild"], check=True,
                   stdout=subprocess.DEVNULL)
    return os.path.join(tree, "build", "vigild")


def write_section(path, text):
    old = open(path).read() if os.path.exists(path) else "# Benchmark results\n"
    start = old.find(SECTION)
    if start >= 0:
        nxt = old.find("\n## ", start + len(SECTION))
        old = old[:start].rstrip("\n") + ("\n\n" + old[nxt + 1:] if nxt >= 0 else "\n")
    with open(path, "w") as f:
        f.write(old.rstrip("\n") + "\n\n" + text)


def fmt_run(name, r):
    if r["ready_s"] is None:
        return "| %s | not READY: %s | %.0f MB | - | - | - | - |" % (name, r["killed"],
                                                                  r["peak_startup_mb"])
    ratio = r["peak_startup_mb"] / r["steady_mb"] if r.get("steady_mb") else 0
    return "| %s | %.2f s | %.0f MB | %.0f MB | %.0f MB | %.2fx | %d/%d in %.0f s |" % (
        name, r["ready_s"], r["ready_rss_mb"], r["peak_startup_mb"], r["steady_mb"], ratio,
        r["connected"], N_SOURCES, r["connected_s"])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--results", default="bench/RESULTS.md")
    ap.add_argument("--before-rev", default=None)
    ap.add_argument("--before-cap-mb", type=int, default=2048)
    ap.add_argument("--before-timeout", type=int, default=180)
    ap.add_argument("--dir", default=None)
    args = ap.parse_args()
    root = args.dir or tempfile.mkdtemp(prefix="vigil-bench-startup-")
    cam = None
    try:
        cam = subprocess.Popen([os.path.join(args.build, "camsim"), "--port", "0"],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                               start_new_session=True)
        port = None
        for line in cam.stdout:
            if line.startswith("READY port="):
                port = int(line.split("=")[1])
                break
        if port is None:
            raise SystemExit("bench_startup: camsim did not start")
        pristine = os.path.join(root, "pristine")
        os.makedirs(pristine)

        def config(data):
            conf = os.path.join(root, "vigil-%s.conf" % os.path.basename(data))
            text = ("[server]\ndata_dir = %s\nlog_level = info\nhttp_listen = 127.0.0.1:%d\n"
                    "[archive]\nsegment_seconds = 60\n"
                    "[retention]\nmin_days = 60\nkeep_days = 3650\nreserve_percent = 0\n") % (
                        data, bench_web.free_port())
            for s in range(N_SOURCES):
                text += "[source s%03d]\nurl = rtsp://127.0.0.1:%d/h264\nkind = video\n" % (s, port)
            with open(conf, "w") as f:
                f.write(text)
            return conf

        conf = config(pristine)
        ctl = [os.path.join(args.build, "vigilctl"), "-c", conf]
        subprocess.run(ctl + ["sweep"], capture_output=True, check=True)  # creates the schema
        end_us = (int(time.time()) // 60) * 60 * 1000000
        t0 = time.monotonic()
        rows = bench_web.generate(os.path.join(pristine, "index.db"), end_us, archive_path)
        files = make_recent_files(os.path.join(pristine, "index.db"), end_us)
        gen_s = time.monotonic() - t0
        log("generated %d rows, %d recent files in %.0f s" % (rows, files, gen_s))

        def fresh(name):
            data = os.path.join(root, name)
            shutil.copytree(pristine, data, symlinks=True)
            return config(data)

        results = []
        if args.before_rev:
            vigild = build_before(args.before_rev, root)
            log("before: %s" % args.before_rev)
            r = run_vigild(vigild, fresh("before"), root, cap_mb=args.before_cap_mb,
                           timeout=args.before_timeout)
            results.append(("before (%s)" % args.before_rev, r))
            shutil.rmtree(os.path.join(root, "before"), ignore_errors=True)
        log("after")
        r = run_vigild(os.path.join(args.build, "vigild"), fresh("after"), root)
        results.append(("after", r))
        for name, r in results:
            log("%s: %s" % (name, r))
        text = SECTION + "\n\n"
        text += ("%s, %d rows over %d sources (the newest %d of each with a file), generated in "
                 "%.0f s. vigild with %d sources pulling the simulator at once; READY is the "
                 "sd_notify datagram. Peak startup RSS is the largest VmRSS from spawn until every "
                 "source has connected; steady is the median VmRSS over the next %d s.\n\n"
                 % (time.strftime("%Y-%m-%d"), rows, N_SOURCES, RECENT_FILES, gen_s, N_SOURCES,
                    STEADY_S))
        text += ("| vigild | time to READY | RSS at READY | peak startup RSS | steady RSS |"
                 " peak / steady | sources connected |\n|---|---|---|---|---|---|---|\n")
        text += "\n".join(fmt_run(name, r) for name, r in results) + "\n"
        after = results[-1][1]
        if after["ready_s"] is not None:
            text += ("\nTargets: READY within 5 s (%s), under 100 MB at READY (%s), peak at most "
                     "1.5x steady (%s).\n" % (
                         "met" if after["ready_s"] <= 5 else "missed",
                         "met" if after["ready_rss_mb"] < 100 else "missed",
                         "met" if after["peak_startup_mb"] <= 1.5 * after["steady_mb"]
                         else "missed"))
        write_section(args.results, text)
        print(text)
    finally:
        if cam and cam.poll() is None:
            cam.terminate()
            cam.wait(10)
        if not args.dir:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
