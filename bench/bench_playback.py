#!/usr/bin/env python3
"""Playback benchmark:

1. media byte ranges: vigild's GET /api/v1/sources/NAME/media/ID with the
   Range of each fragment a player asks for, against nginx serving the same
   files with the same ranges (wrk, 64 connections, 10 s each; goal >= 0.8x);
2. the playlist of 24 h (1440 one-minute segments with their fragment
   tables) p50/p99 over 200 requests (goal p99 < 20 ms);
3. the timeline of 100 sources x 1 day in one request, p50/p99 (goal
   p99 < 50 ms),

on an index of --rows segment rows (default 8.64 M: 100 sources x 60 days x
1440), bulk-loaded with plain SQLite after vigild made the schema. The media
are real files recorded from the camera simulator (2 s segments), made into
60 s files of their fragments as the recorder writes them by default (see
lengthen); the synthetic rows point at hard links of those and carry their
fragment tables, so the 24 h playlist has the size of a real one.

With --dir D the archive is kept in D and a later run with the same D
reuses it (generating 8.64 M rows takes minutes); its day is then the one
it was generated for. --results replaces this script's section of the file
and states the load average.

usage: bench_playback.py [--build DIR] [--rows N] [--results FILE] [--dir D]
"""
import argparse
import datetime
import hashlib
import http.client
import json
import os
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
import integration  # noqa: E402
from integration import Camsim, wait_for  # noqa: E402
from integration_web import PASSWORD, Client, WebVigil, free_port, wait_http  # noqa: E402

MIN_US = 60 * 1000000
DAY_US = 1440 * MIN_US
N_SOURCES = 100
SECTION = "## Playback (bench/bench_playback.py)"


def write_section(path, text):
    old = open(path).read() if os.path.exists(path) else "# Benchmark results\n"
    start = old.find(SECTION)
    if start >= 0:
        nxt = old.find("\n## ", start + len(SECTION))
        old = old[:start].rstrip("\n") + ("\n\n" + old[nxt + 1:] if nxt >= 0 else "\n")
    with open(path, "w") as f:
        f.write(old.rstrip("\n") + "\n\n" + text)


def kept(data):
    """(names, rows, now_us) of an archive an earlier run generated."""
    con = sqlite3.connect("file:%s?mode=ro" % os.path.join(data, "index.db"), uri=True)
    try:
        now_us = con.execute("SELECT max(g.end_us) FROM segment g JOIN source s"
                             " ON s.id = g.source_id WHERE s.name = 'b000'").fetchone()[0]
        made = con.execute("SELECT count(*) FROM segment g JOIN source s ON s.id = g.source_id"
                           " WHERE s.name LIKE 'b%'").fetchone()[0]
    finally:
        con.close()
    return ["b%03d" % i for i in range(N_SOURCES)], made, now_us


def iso(us):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(us // 1000000))


def record(tmp):
    """Records cam for a few segments; returns (data dir, rows with blobs)."""
    cam = Camsim()
    port = free_port()
    v = WebVigil(os.path.join(tmp, "rec"), [("cam", cam.url("h264"), "video")],
                 "http_listen = 127.0.0.1:%d\n" % port)
    v.start()
    try:
        db = os.path.join(v.data, "index.db")

        def rows():
            if not os.path.exists(db):
                return None
            con = sqlite3.connect("file:%s?mode=ro" % db, uri=True, timeout=10)
            try:
                r = con.execute("SELECT g.path, g.bytes, g.init_bytes, g.sha256, f.data "
                                "FROM segment g JOIN segment_frag f ON f.segment_id = g.id").fetchall()
            except sqlite3.OperationalError:
                return None
            finally:
                con.close()
            return r if len(r) >= 4 else None
        got = wait_for("4 recorded segments", rows, 60, interval=0.5)
    finally:
        v.stop()
        cam.stop()
    return v.data, got


def varint(v):
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7f) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def read_varint(b, i):
    v = shift = 0
    while True:
        c = b[i]
        i += 1
        v |= (c & 0x7f) << shift
        shift += 7
        if c < 0x80:
            return v, i


def decode_frags(blob):
    """[(offset, size, key, start_us, dur_us)] of a fragment table blob
    (archive/frags.c's format, version 1)."""
    assert blob[0] == 1
    n, i = read_varint(blob, 1)
    out, end, media_end = [], 0, 0
    for _ in range(n):
        gap, i = read_varint(blob, i)
        sk, i = read_varint(blob, i)
        zs, i = read_varint(blob, i)
        dur, i = read_varint(blob, i)
        start = media_end + ((zs >> 1) ^ -(zs & 1))
        out.append((end + gap, sk >> 1, sk & 1, start, dur))
        end = end + gap + (sk >> 1)
        media_end = start + dur
    return out


def encode_frags(frags):
    out, end, media_end = bytearray([1]) + varint(len(frags)), 0, 0
    for off, size, key, start, dur in frags:
        d = start - media_end
        out += varint(off - end) + varint(size << 1 | key) + varint(d << 1 if d >= 0 else
                                                                     ((-d - 1) << 1) | 1)
        out += varint(dur)
        end, media_end = off + size, start + dur
    return bytes(out)


def lengthen(data, recorded, seconds):
    """Files of `seconds` of media as the recorder writes them with 60 s
    segments: the init part of a recorded 2 s file, then its fragments
    (moof + mdat) repeated until the time is reached, with the table of
    every copy. The copies repeat their sequence numbers and decode times
    (no player plays them), but each byte range is a real fragment of the
    size the camera simulator's stream gives."""
    out = []
    for n, (path, size, init_bytes, _sha, blob) in enumerate(recorded):
        frags = decode_frags(blob)
        with open(os.path.join(data, path), "rb") as f:
            raw = f.read()
        parts = [raw[:init_bytes]]
        table, off, t = [], init_bytes, 0
        while t < seconds * 1000000:
            for o, sz, key, _st, dur in frags:
                parts.append(raw[o:o + sz])
                table.append((off, sz, key, t, dur))
                off += sz
                t += dur
        body = b"".join(parts)
        rel = "media/bench/long-%d.mp4" % n
        with open(os.path.join(data, rel), "wb") as f:
            f.write(body)
        out.append((rel, len(body), init_bytes, hashlib.sha256(body).hexdigest(),
                    encode_frags(table)))
    return out


def build_index(data, recorded, n_rows, now_us):
    """Adds synthetic rows: 100 sources x 1 day (one-minute segments) pointing
    at hard links of the recorded files, then filler rows up to n_rows."""
    db = os.path.join(data, "index.db")
    con = sqlite3.connect(db)
    con.execute("PRAGMA synchronous=OFF")
    cur = con.cursor()
    names = ["b%03d" % i for i in range(N_SOURCES)]
    for name in names:
        cur.execute("INSERT OR IGNORE INTO source(name, kind) VALUES (?, 'video')", (name,))
    ids = dict(cur.execute("SELECT name, id FROM source").fetchall())
    day0 = now_us - DAY_US
    per_source_day = 1440
    filler_days = max(0, n_rows // (N_SOURCES * per_source_day) - 1)
    link_dir = os.path.join(data, "media", "bench")
    os.makedirs(link_dir, exist_ok=True)
    recorded = lengthen(data, recorded, MIN_US // 1000000)
    made = 0
    for si, name in enumerate(names):
        # older days first (a recorder appends: the span table's triggers
        # extend the last span): rows only (the index's size), no files, no tables
        if filler_days:
            cur.execute(
                "WITH RECURSIVE k(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM k WHERE i + 1 < ?)"
                " INSERT INTO segment(source_id, start_us, end_us, media_us, bytes, sha256, codecs,"
                " init_bytes, path) SELECT ?, ? + i * ?, ? + i * ? + ?, ?, 1000, ?, 'h264', 700,"
                " printf('media/old/%s/%d.mp4', ?, i) FROM k",
                (filler_days * per_source_day, ids[name], day0 - filler_days * DAY_US, MIN_US,
                 day0 - filler_days * DAY_US, MIN_US, MIN_US, MIN_US, "a" * 64, name))
            made += filler_days * per_source_day
        rows, frags = [], []
        for k in range(per_source_day):
            start = day0 + k * MIN_US
            src = recorded[k % len(recorded)]
            if si == 0:  # real files behind the first source only (its playlist is served)
                rel = "media/bench/%d.mp4" % k
                os.link(os.path.join(data, src[0]), os.path.join(data, rel))
            else:
                rel = "media/bench/%s-%d.mp4" % (name, k)
            rows.append((ids[name], start, start + MIN_US, MIN_US, src[1], src[3], "h264", src[2],
                         rel))
            frags.append(src[4])
        cur.executemany("INSERT INTO segment(source_id, start_us, end_us, media_us, bytes, sha256,"
                        " codecs, init_bytes, path) VALUES (?,?,?,?,?,?,?,?,?)", rows)
        last = cur.execute("SELECT max(id) FROM segment").fetchone()[0]
        first = last - len(rows) + 1
        cur.executemany("INSERT INTO segment_frag(segment_id, data) VALUES (?, ?)",
                        [(first + i, f) for i, f in enumerate(frags)])
        made += len(rows)
    con.commit()
    con.close()
    return names, made


def percentiles(samples):
    s = sorted(samples)
    return statistics.median(s), s[min(len(s) - 1, int(len(s) * 0.99))]


def time_gets(client, path, n):
    out = []
    c = client.conn()
    for _ in range(n):
        t0 = time.perf_counter()
        c.request("GET", path, headers={"Cookie": client.cookie})
        r = c.getresponse()
        r.read()
        out.append((time.perf_counter() - t0) * 1000)
        assert r.status == 200, (path, r.status)
    c.close()
    return percentiles(out)


WRK_LUA = """
local ranges = {%s}
local n = 0
request = function()
  n = n + 1
  local r = ranges[(n %% #ranges) + 1]
  return wrk.format("GET", r[1], {["Range"] = r[2], ["Cookie"] = "%s"})
end
"""


def wrk(url_base, ranges, cookie, tmp, name, seconds=10):
    script = os.path.join(tmp, name + ".lua")
    with open(script, "w") as f:
        f.write(WRK_LUA % (",".join('{"%s","%s"}' % r for r in ranges), cookie))
    out = subprocess.run(["wrk", "-t", "2", "-c", "64", "-d", "%ds" % seconds, "-s", script,
                          url_base], capture_output=True, text=True, timeout=60, check=True).stdout
    # an answer other than 206 would be counted as served
    assert "Non-2xx" not in out, out
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    tr = re.search(r"Transfer/sec:\s+([\d.]+)([KMG]?)B", out)
    mb = float(tr.group(1)) * {"K": 1 / 1024, "M": 1, "G": 1024, "": 1 / 1048576}[tr.group(2)]
    return rps, mb


ROUNDS = 3
WARMUP = 20


def cpu_seconds(pid):
    """User + system CPU time of pid and its children processes (nginx's
    workers), threads included."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(d) == pid or int(fields[1]) == pid:  # fields[1]: the parent's pid
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / tick


def wrk_side_by_side(ours, theirs, tmp):
    """ROUNDS alternating 5 s runs of each (the load of a shared machine
    moves within seconds; one run of each after the other measured it as
    much as the servers): the means, each round's ratio, and each server's
    CPU time per request (which other jobs on the machine change much less
    than throughput)."""
    runs, cpu = [], [0.0, 0.0]
    for i in range(ROUNDS):
        pair = []
        for k, (url, ranges, cookie, pid) in enumerate((ours, theirs)):
            c0 = cpu_seconds(pid)
            rps, mb = wrk(url, ranges, cookie, tmp, ("ours", "nginx")[k], 5)
            cpu[k] += cpu_seconds(pid) - c0
            pair.append((rps, mb))
        runs.append(pair)
    rps = [sum(r[k][0] for r in runs) / ROUNDS for k in (0, 1)]
    mb = [sum(r[k][1] for r in runs) / ROUNDS for k in (0, 1)]
    us = [cpu[k] * 1e6 / (rps[k] * 5 * ROUNDS) for k in (0, 1)]
    return rps, mb, [r[0][0] / r[1][0] for r in runs], us


def nginx(root, port, tmp):
    conf = os.path.join(tmp, "nginx.conf")
    with open(conf, "w") as f:
        # as root, nginx's workers would drop to nobody, who cannot read the
        # private temporary directory
        if os.geteuid() == 0:
            f.write("user root;\n")
        f.write("daemon off; worker_processes 2; pid %s/nginx.pid; error_log %s/nginx.err;\n"
                "events { worker_connections 1024; }\n"
                "http { access_log off; sendfile on; tcp_nopush on; types { video/mp4 mp4; }\n"
                "  client_body_temp_path %s; proxy_temp_path %s; fastcgi_temp_path %s;\n"
                "  uwsgi_temp_path %s; scgi_temp_path %s;\n"
                "  server { listen 127.0.0.1:%d; root %s; } }\n"
                % (tmp, tmp, tmp, tmp, tmp, tmp, tmp, port, root))
    return subprocess.Popen(["nginx", "-c", conf, "-p", tmp], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--rows", type=int, default=8640000)
    ap.add_argument("--results")
    ap.add_argument("--dir", help="keep the archive here; reuse it when it is there")
    args = ap.parse_args()
    integration.BUILD = args.build
    lines = []
    with tempfile.TemporaryDirectory(prefix="vigil-bench-playback-") as tmp:
        root = args.dir or os.path.join(tmp, "serve")
        if args.dir and os.path.exists(os.path.join(args.dir, "data", "index.db")):
            names, made, now_us = kept(os.path.join(args.dir, "data"))
            print("index: %d rows kept in %s" % (made, args.dir))
        else:
            data, recorded = record(tmp)
            now_us = int(time.time() * 1e6)
            t0 = time.monotonic()
            names, made = build_index(data, recorded, args.rows, now_us)
            print("index: %d synthetic rows in %.0f s" % (made, time.monotonic() - t0))
            os.makedirs(os.path.join(root, "data"), exist_ok=True)
            os.rmdir(os.path.join(root, "data"))
            shutil.move(data, os.path.join(root, "data"))
        port = free_port()
        sources = [(n, "rtsp://127.0.0.1:9/none", "video") for n in names]
        # the synthetic days are not swept while measured: a kept archive
        # ages between runs, and a sweep deleting thousands of rows during a
        # run measured that (on vigild's side only) more than serving
        v = WebVigil(root, sources, "http_listen = 127.0.0.1:%d\n" % port,
                     extra="[retention]\nkeep_days = 3650\n")
        v.add_user("admin", "admin", check=False)  # a kept archive has it
        seen = os.path.getsize(v.logpath) if os.path.exists(v.logpath) else 0

        def listening():
            with open(v.logpath, "rb") as f:
                f.seek(seen)
                return b"listening on" in f.read()
        v.start()
        ng = None
        try:
            # at 8.64 M rows on a loaded machine startup takes longer than wait_http's 20 s
            wait_for("vigild's HTTP", listening, 300)
            wait_http(port)
            c = Client(port)
            c.login("admin")
            day = "from=%s&to=%s" % (urllib.parse.quote(iso(now_us - DAY_US)),
                                     urllib.parse.quote(iso(now_us)))
            path = "/api/v1/sources/%s/playlist.m3u8?%s" % (names[0], day)
            st, body, _ = c.request("GET", path)
            assert st == 200, (st, body[:200])
            n_entries = body.count(b"#EXTINF")
            # The first requests after a start are slower: each HTTP thread's
            # index connection is opened on its first request and its page
            # cache starts cold. Measured apart, so the p99 below is the
            # steady state's and not two cold requests out of 200.
            cold = [time_gets(c, path, 1)[0] for _ in range(WARMUP)]
            c0 = cpu_seconds(v.proc.pid)
            p50, p99 = percentiles([time_gets(c, path, 1)[0] for _ in range(200)])
            cpu_ms = (cpu_seconds(v.proc.pid) - c0) * 1000 / 200
            lines.append("| playlist of 24 h (1440 segments of 60 s, %d fragments, %.1f MB) on %d "
                         "rows, 200 requests after %d warm-up ones (those: median %.1f ms, slowest "
                         "%.1f ms) | p50 %.1f ms, p99 %.1f ms; vigild CPU %.1f ms per playlist | "
                         "p99 < 20 ms | %s |"
                         % (n_entries, len(body) / 1e6, made, WARMUP, statistics.median(cold),
                            max(cold), p50, p99, cpu_ms, "yes" if p99 < 20 else "no"))
            tl = "/api/v1/timeline?" + day
            st, body, _ = c.request("GET", tl)
            assert st == 200 and len(body["sources"]) >= N_SOURCES, st
            p50, p99 = percentiles([time_gets(c, tl, 1)[0] for _ in range(100)])
            lines.append("| timeline of %d sources x 1 day in one request | p50 %.1f ms, p99 %.1f ms "
                         "| p99 < 50 ms | %s |" % (N_SOURCES, p50, p99, "yes" if p99 < 50 else "no"))
            # media: the byte ranges a player asks for, vs nginx on the same files
            entries = re.findall(rb"#EXT-X-BYTERANGE:(\d+)@(\d+)\nmedia/(\d+)", c.request("GET", path)[1])
            by_id = {}
            con = sqlite3.connect("file:%s?mode=ro" % os.path.join(v.data, "index.db"), uri=True)
            for n, o, sid in entries[:400]:
                rel = by_id.get(sid) or con.execute("SELECT path FROM segment WHERE id = ?",
                                                    (int(sid),)).fetchone()[0]
                by_id[sid] = rel
            con.close()
            rng = lambda n, o: "bytes=%d-%d" % (int(o), int(o) + int(n) - 1)  # noqa: E731
            ours = [("/api/v1/sources/%s/media/%s" % (names[0], sid.decode()), rng(n, o))
                    for n, o, sid in entries[:400]]
            theirs = [("/" + by_id[sid], rng(n, o)) for n, o, sid in entries[:400]]
            nport = free_port()
            ng = nginx(v.data, nport, tmp)
            wait_http_plain = lambda: subprocess.run(  # noqa: E731
                ["curl", "-sf", "-o", "/dev/null", "-r", "0-0",
                 "http://127.0.0.1:%d%s" % (nport, theirs[0][0])]).returncode == 0
            try:
                wait_for("nginx", wait_http_plain, 10)
            except AssertionError:
                with open(os.path.join(tmp, "nginx.err")) as f:
                    print(f.read()[-2000:])
                raise
            (ours_rps, their_rps), (ours_mb, their_mb), each, us = wrk_side_by_side(
                ("http://127.0.0.1:%d" % port, ours, c.cookie, v.proc.pid),
                ("http://127.0.0.1:%d" % nport, theirs, "", ng.pid), tmp)
            ratio = ours_rps / their_rps
            lines.append("| media byte ranges (fragments of a 320x240 H.264 recording), wrk 64 "
                         "connections, %d alternating 5 s runs each: vigild %.0f req/s (%.1f MB/s) "
                         "vs nginx %.0f req/s (%.1f MB/s); per round %s; CPU per request: vigild "
                         "%.0f us, nginx %.0f us (%.2fx) | %.2fx | >= 0.8x | %s |"
                         % (ROUNDS, ours_rps, ours_mb, their_rps, their_mb,
                            ", ".join("%.2fx" % x for x in each), us[0], us[1], us[1] / us[0],
                            ratio, "yes" if ratio >= 0.8 else "no"))
        finally:
            if ng:
                ng.terminate()
                ng.wait(10)
            v.stop()
    for line in lines:
        print(line)
    if args.results:
        load = open("/proc/loadavg").read().split()[:3]
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=integration.REPO,
                             capture_output=True, text=True).stdout.strip()
        write_section(args.results, SECTION + "\n\n" + (
            "%s, git %s, by `python3 bench/bench_playback.py`; %d segment rows (100 sources; the "
            "day measured has 1440 one-minute rows per source pointing at hard links of 60 s "
            "files made of the fragments of 2 s files recorded from the camera simulator, with "
            "their fragment tables). Playlist and "
            "timeline: one request at a time over loopback (session cookie, audit row each). "
            "Load average (1/5/15 min) at the end: %s / %s / %s on 2 shared cores (other jobs "
            "running: p99 on such a machine is mostly the scheduler's).\n\n"
            "| what | measured | goal | met |\n|---|---|---|---|\n%s\n") % (
            time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), rev, made, load[0], load[1],
            load[2], "\n".join(lines)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
