#!/usr/bin/env python3
"""Seek benchmark: in headless chromium, /sources/{name}?at=T over 24 h of
recording, then 50 seeks to arbitrary moments of that day through the
player's "go to" field (tests/ui/bench_seek.mjs); for each, the time from
the seek to the first new frame shown (requestVideoFrameCallback). Goal:
p50 < 500 ms.

The day: vigild records the camera simulator's H.264 mount in 10 s
segments for a few segments; those files are then placed again (hard links:
no extra disk) under a day of index rows, one after another, each row with
its file's real duration, size, hash and fragment table, so the player
plays real media all day long. vigild is then started on that archive with
the source pointed at a closed port (nothing more is recorded).

usage: bench_seek.py [--build DIR] [--results FILE] [--seeks N]
"""
import argparse
import os
import json
import sqlite3
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
import integration  # noqa: E402
from integration import Camsim, wait_for  # noqa: E402
from integration_web import PASSWORD, WebVigil, free_port, wait_http  # noqa: E402

SECTION = "## Seek in Chromium (bench/bench_seek.py)"
DAY_US = 86400 * 1000000
SEG_S = 10


def log(msg):
    print("[seek %s] %s" % (time.strftime("%H:%M:%S"), msg), file=sys.stderr, flush=True)


def write_section(path, text):
    old = open(path).read() if os.path.exists(path) else "# Benchmark results\n"
    start = old.find(SECTION)
    if start >= 0:
        nxt = old.find("\n## ", start + len(SECTION))
        old = old[:start].rstrip("\n") + ("\n\n" + old[nxt + 1:] if nxt >= 0 else "\n")
    with open(path, "w") as f:
        f.write(old.rstrip("\n") + "\n\n" + text)


def record(root):
    """Records cam in 10 s segments; returns (data dir, finished rows)."""
    cam = Camsim()
    v = WebVigil(root, [("cam", cam.url("h264"), "video")],
                 "http_listen = 127.0.0.1:%d\n" % free_port(), segment_seconds=SEG_S)
    v.start()
    db = os.path.join(v.data, "index.db")

    def rows():
        if not os.path.exists(db):
            return None
        con = sqlite3.connect("file:%s?mode=ro" % db, uri=True, timeout=10)
        try:
            r = con.execute("SELECT g.path, g.bytes, g.init_bytes, g.sha256, g.codecs, g.media_us,"
                            " g.end_us - g.start_us, f.data FROM segment g"
                            " JOIN segment_frag f ON f.segment_id = g.id ORDER BY g.start_us"
                            ).fetchall()
        except sqlite3.OperationalError:
            return None
        finally:
            con.close()
        # the first segment starts whenever the connection did: left out
        return r[1:] if len(r) >= 5 else None
    try:
        got = wait_for("4 whole 10 s segments", rows, 120, interval=1)
    finally:
        v.stop()
        cam.stop()
    return v.data, got


def build_day(data, recorded, day_from):
    """One day of rows for cam, one after another, each a hard link of a
    recorded file with that file's duration and fragment table."""
    con = sqlite3.connect(os.path.join(data, "index.db"))
    sid = con.execute("SELECT id FROM source WHERE name = 'cam'").fetchone()[0]
    links = os.path.join(data, "media", "day")
    os.makedirs(links, exist_ok=True)
    at, k, rows = day_from, 0, []
    while at < day_from + DAY_US:
        path, size, init, sha, codecs, media_us, length, frags = recorded[k % len(recorded)]
        rel = "media/day/%d.mp4" % k
        os.link(os.path.join(data, path), os.path.join(data, rel))
        rows.append(((sid, at, at + length, media_us, size, sha, codecs, init, rel), frags))
        at += length
        k += 1
    for row, frags in rows:
        cur = con.execute("INSERT INTO segment(source_id, start_us, end_us, media_us, bytes, sha256,"
                          " codecs, init_bytes, path) VALUES (?,?,?,?,?,?,?,?,?)", row)
        con.execute("INSERT INTO segment_frag(segment_id, data) VALUES (?, ?)",
                    (cur.lastrowid, frags))
    con.commit()
    con.close()
    return len(rows), at


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--results")
    ap.add_argument("--seeks", type=int, default=50)
    ap.add_argument("--dir", help="keep the archive here; reuse it when it is there")
    args = ap.parse_args()
    integration.BUILD = args.build
    with tempfile.TemporaryDirectory(prefix="vigil-bench-seek-") as tmp:
        root = os.path.join(args.dir or tmp, "v")
        meta = os.path.join(args.dir or tmp, "day.json")
        if os.path.exists(meta):
            n_rows, day_from, day_to = json.load(open(meta))
        else:
            data, recorded = record(root)
            # the day ends an hour before the recording: nothing overlaps it
            day_from = (int(time.time()) // 60 * 60 - 25 * 3600) * 1000000
            n_rows, day_to = build_day(data, recorded, day_from)
            json.dump([n_rows, day_from, day_to], open(meta, "w"))
        log("%d rows of %d s over 24 h" % (n_rows, SEG_S))
        port = free_port()
        v = WebVigil(root, [("cam", "rtsp://127.0.0.1:9/none", "video")],
                     "http_listen = 127.0.0.1:%d\nui_dir = %s\n"
                     % (port, os.path.join(integration.REPO, "web", "ui")), segment_seconds=SEG_S)
        v.add_user("admin", "admin", check=False)  # a kept archive has it
        seen = os.path.getsize(v.logpath) if os.path.exists(v.logpath) else 0

        def listening():
            with open(v.logpath, "rb") as f:
                f.seek(seen)
                return b"listening on" in f.read()
        v.start()
        try:
            # a loaded machine can take longer than wait_http's 20 s to start
            wait_for("vigild's HTTP", listening, 120)
            wait_http(port)
            env = dict(os.environ, VIGIL_URL="http://127.0.0.1:%d" % port, VIGIL_PASSWORD=PASSWORD)
            p = subprocess.run(["node", "bench_seek.mjs", "cam", str(day_from // 1000),
                                str(day_to // 1000), str(args.seeks)],
                               cwd=os.path.join(integration.REPO, "tests", "ui"), env=env,
                               capture_output=True, text=True, timeout=1200)
            if os.environ.get("BENCH_SEEK_DEBUG"):
                print(p.stderr)
            if p.returncode != 0:
                print(p.stdout[-3000:], p.stderr[-3000:])
                raise SystemExit("bench_seek.mjs failed")
        finally:
            v.stop()
    r = json.loads(p.stdout.strip().splitlines()[-1])
    load = open("/proc/loadavg").read().split()[:3]
    rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=integration.REPO,
                         capture_output=True, text=True).stdout.strip()
    text = SECTION + "\n\n" + (
        "%s, git %s, by `python3 bench/bench_seek.py`. 24 h of one camera (%d rows of %d s of "
        "the camera simulator's 320x240 H.264, real files placed again by hard links), played "
        "in headless chromium (Debian's, muted) from `/sources/cam?at=T`; then %d seeks to "
        "arbitrary whole minutes of that day (seeded) through the player's \"go to\" field. "
        "Measured: from the seek to the first frame presented at the new position "
        "(requestVideoFrameCallback, once the player shows the new time). Load average "
        "(1/5/15 min) at the end: %s / %s / %s on 2 shared cores.\n\n"
        "| what | measured | goal | met |\n|---|---|---|---|\n"
        "| seek to an arbitrary moment of a 24 h recording, first new frame shown | p50 %s ms, "
        "p90 %s ms, max %s ms (%d of %d shown) | p50 < 500 ms | %s |\n") % (
        time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), rev, n_rows, SEG_S, args.seeks,
        load[0], load[1], load[2], fmt(r["p50_ms"]), fmt(r["p90_ms"]), fmt(r["max_ms"]),
        r["shown"], r["seeks"],
        "yes" if r["p50_ms"] is not None and r["p50_ms"] < 500 and r["shown"] == r["seeks"]
        else "no")
    text += ("\nWhere the time went (medians, ms; the seeks that opened a new window asked for a "
             "playlist, the others were held by the window already open):\n\n"
             "| seeks | n | first frame | playlist answered | page's own work | first media byte | "
             "media to frame |\n|---|---|---|---|---|---|---|\n")
    for what, key in (("opened a window", "opened"), ("within the window", "held")):
        b = r.get(key) or {}
        text += "| %s | %d | %s | %s | %s | %s | %s |\n" % (
            what, b.get("n", 0), fmt(b.get("ms")), fmt(b.get("playlist_ms")), fmt(b.get("page_ms")),
            fmt(b.get("first_byte_ms")), fmt(b.get("frame_ms")))
    if r["failed"]:
        text += "\nSeeks without a frame within 20 s: %s\n" % json.dumps(r["failed"])
    print(text)
    if args.results:
        write_section(args.results, text)
    return 0


def fmt(v):
    return "-" if v is None else "%.0f" % v


if __name__ == "__main__":
    sys.exit(main())
