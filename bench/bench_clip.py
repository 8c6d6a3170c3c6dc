#!/usr/bin/env python3
"""Clip benchmark: GET /api/v1/sources/{name}/clip.mp4 of 1 h of 1080p
against `ffmpeg -f concat -c copy` making the same clip from the same
segment files, side by side on one machine.

The archive: tests/tools/make-bench-media.sh makes 1080p H.264 (25 fps,
4 Mbit/s, 2 s GOP); one 60 s segment is cut from it with the writer's
fragmenting (+frag_keyframe+empty_moov+default_base_moof) and placed 60
times (hard links: same bytes, no extra disk) under media/cam/DAY/START.mp4
with consecutive start times, as an hour of recording. vigild indexes them
at startup (files without rows are completed into rows) and is then asked
for the hour. Measured: time to the first byte, total time, throughput,
vigild's RSS before and at its peak while serving (sampled every 20 ms from
/proc), and a 1 MiB Range request in the middle; ffmpeg: total time (its MP4
is usable only once finished) and its peak RSS (/usr/bin/time).

usage: bench_clip.py [--build DIR] [--results FILE] [--dir D]
"""
import argparse
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests"))
import integration  # noqa: E402
from integration import free_port, wait_for  # noqa: E402

SECTION = "## Clips (bench/bench_clip.py)"
SEGMENTS = 60
SEG_S = 60
PASSWORD = "bench-password-1"


def log(msg):
    print("[clip %s] %s" % (time.strftime("%H:%M:%S"), msg), file=sys.stderr, flush=True)


def rss_kb(pid, key="VmRSS"):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def cpu_s(pid):
    """User + system CPU seconds a process has used."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def write_section(path, text):
    old = open(path).read() if os.path.exists(path) else "# Benchmark results\n"
    start = old.find(SECTION)
    if start >= 0:
        nxt = old.find("\n## ", start + len(SECTION))
        old = old[:start].rstrip("\n") + ("\n\n" + old[nxt + 1:] if nxt >= 0 else "\n")
    with open(path, "w") as f:
        f.write(old.rstrip("\n") + "\n\n" + text)


def iso(us):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(us // 1000000))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--results", default="bench/RESULTS.md")
    ap.add_argument("--dir", default=None, help="work directory (default: a temporary one)")
    args = ap.parse_args()
    integration.BUILD = args.build
    work = args.dir or tempfile.mkdtemp(prefix="vigil-bench-clip-")
    os.makedirs(work, exist_ok=True)
    media = os.path.join(work, "bench-1080p.mp4")
    subprocess.run(["sh", os.path.join(REPO, "tests/tools/make-bench-media.sh"), media,
                    str(SEG_S + 2)], check=True)
    seg = os.path.join(work, "segment.mp4")
    if not os.path.exists(seg):
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", media, "-t", str(SEG_S), "-c", "copy",
                        "-movflags", "+frag_keyframe+empty_moov+default_base_moof", seg],
                       check=True)
    data = os.path.join(work, "data")
    shutil.rmtree(data, ignore_errors=True)
    base_us = (int(time.time()) - 2 * 86400) // 3600 * 3600 * 1000000
    paths = []
    for i in range(SEGMENTS):
        start = base_us + i * SEG_S * 1000000
        day = time.strftime("%Y-%m-%d", time.gmtime(start // 1000000))
        d = os.path.join(data, "media", "cam", day)
        os.makedirs(d, exist_ok=True)
        p = os.path.join(d, "%d.mp4" % start)
        os.link(seg, p)
        paths.append(p)
    port = free_port()
    conf = os.path.join(work, "vigil.conf")
    with open(conf, "w") as f:
        f.write("[server]\ndata_dir = %s\nlog_level = warning\nhttp_listen = 127.0.0.1:%d\n"
                "[retention]\nmin_days = 3650\nkeep_days = 3650\n"
                "[source cam]\nurl = rtsp://127.0.0.1:9/none\nkind = video\n" % (data, port))
    vigilctl = os.path.join(args.build, "vigilctl")
    subprocess.run([vigilctl, "-c", conf, "user", "add", "admin", "--role", "admin"],
                   input=PASSWORD + "\n", text=True, check=True, capture_output=True)
    logf = open(os.path.join(work, "vigild.log"), "w")
    proc = subprocess.Popen([os.path.join(args.build, "vigild"), "-c", conf], stdout=logf,
                            stderr=subprocess.STDOUT)
    try:
        def indexed():
            p = subprocess.run([vigilctl, "-c", conf, "segments", "cam", "--from",
                                iso(base_us), "--to", iso(base_us + 3600 * 1000000), "--json"],
                               capture_output=True, text=True)
            return p.returncode == 0 and len(json.loads(p.stdout)) >= SEGMENTS
        wait_for("the hour indexed", indexed, 600, interval=0.5)

        def up():
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                c.request("GET", "/healthz")
                return c.getresponse().status == 200
            except OSError:
                return False
        wait_for("HTTP", up, 30)
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        c.request("POST", "/api/v1/login", json.dumps({"user": "admin", "password": PASSWORD}),
                  {"Content-Type": "application/json"})
        r = c.getresponse()
        r.read()
        cookie = r.getheader("Set-Cookie").split(";")[0]
        target = "/api/v1/sources/cam/clip.mp4?from=%s&to=%s" % (
            iso(base_us), iso(base_us + 3600 * 1000000))

        rss_before = rss_kb(proc.pid)
        peak = [rss_before]
        done = threading.Event()

        def sample():
            while not done.is_set():
                peak[0] = max(peak[0], rss_kb(proc.pid))
                time.sleep(0.02)
        t = threading.Thread(target=sample, daemon=True)
        t.start()
        # curl reads it to /dev/null: the client is not what is measured
        cpu0 = cpu_s(proc.pid)
        p = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-H", "Cookie: " + cookie, "-w",
                            "%{http_code} %{time_starttransfer} %{time_total} %{size_download}",
                            "http://127.0.0.1:%d%s" % (port, target)],
                           capture_output=True, text=True, check=True)
        cpu_vigil = cpu_s(proc.pid) - cpu0
        done.set()
        t.join()
        code, t_first, t_total, total = p.stdout.split()
        t_first, t_total, total = float(t_first), float(t_total), int(total)
        assert code == "200", p.stdout
        # a 1 MiB window in the middle, as a seeking player or a resumed download asks
        t1 = time.monotonic()
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        mid = total // 2
        c.request("GET", target, headers={"Cookie": cookie,
                                          "Range": "bytes=%d-%d" % (mid, mid + (1 << 20) - 1)})
        r = c.getresponse()
        part = r.read()
        t_range = time.monotonic() - t1
        assert r.status == 206 and len(part) == 1 << 20
        log("vigil: first byte %.1f ms, total %.2f s, %d bytes, RSS %d -> %d KB" % (
            t_first * 1000, t_total, total, rss_before, peak[0]))
    finally:
        proc.terminate()
        proc.wait(30)
        logf.close()

    # the peer: the same 60 files, one file out
    lst = os.path.join(work, "concat.txt")
    with open(lst, "w") as f:
        for p in paths:
            f.write("file '%s'\n" % p)
    out = os.path.join(work, "concat.mp4")
    t0 = time.monotonic()
    p = subprocess.run(["/usr/bin/time", "-f", "%M %U %S", "ffmpeg", "-v", "error", "-y", "-f", "concat",
                        "-safe", "0", "-i", lst, "-c", "copy", out],
                       capture_output=True, text=True, check=True)
    t_ff = time.monotonic() - t0
    ff_rss, ff_user, ff_sys = p.stderr.strip().splitlines()[-1].split()
    ff_rss, cpu_ff = int(ff_rss), float(ff_user) + float(ff_sys)
    ff_size = os.path.getsize(out)
    os.unlink(out)
    log("ffmpeg concat: %.2f s, %d bytes, peak RSS %d KB" % (t_ff, ff_size, ff_rss))

    text = SECTION + "\n\n" + (
        "%s, %d segments of %d s of 1080p H.264 (4 Mbit/s, 2 s GOP) = 1 h; the clip read by\n"
        "curl over loopback to /dev/null; ffmpeg writes its file (page cache); the segment\n"
        "files in the page cache for both; 2 shared cores.\n\n"
        "| | first byte | total | throughput | memory |\n|---|---|---|---|---|\n"
        "| vigil `clip.mp4` | %.1f ms | %.2f s | %.0f MB/s | vigild RSS %.1f MB before, "
        "%.1f MB peak while serving |\n"
        "| `ffmpeg -f concat -c copy` | (usable when done) %.2f s | %.2f s | %.0f MB/s | "
        "peak RSS %.1f MB |\n\n"
        "- vigil / ffmpeg total time: **%.2fx** (target <= 0.2x); first byte %.1f ms "
        "(target < 100 ms).\n"
        "- CPU time (user + system): vigild %.2f s serving the clip, ffmpeg %.2f s making it: "
        "**%.2fx** (on a shared machine the wall times above depend on what else runs; the CPU "
        "each side spent does much less).\n"
        "- Load average (1/5/15 min) at the end: %s.\n"
        "- A 1 MiB `Range` in the middle of the hour: %.1f ms (the layout is planned again "
        "per request: the same cost as the first byte, plus 1 MiB).\n"
        "- Sizes: vigil %d bytes, ffmpeg %d bytes (its own moov and padding).\n") % (
        time.strftime("%Y-%m-%d"), SEGMENTS, SEG_S, t_first * 1000, t_total,
        total / t_total / 1e6, rss_before / 1024, peak[0] / 1024, t_ff, t_ff,
        ff_size / t_ff / 1e6, ff_rss / 1024, t_total / t_ff, t_first * 1000, cpu_vigil, cpu_ff,
        cpu_vigil / cpu_ff, " / ".join(open("/proc/loadavg").read().split()[:3]), t_range * 1000,
        total, ff_size)
    write_section(args.results, text)
    print(text)
    if not args.dir:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
