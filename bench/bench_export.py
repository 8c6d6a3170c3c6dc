#!/usr/bin/env python3
"""Evidence export benchmark: one hour of four video sources exported as a
signed bundle by vigil (`vigilctl export --bundle`, the same builder as the
API's export jobs) against what a user would otherwise do: one `ffmpeg -f
concat -c copy` per source, then `zip -0` of the four files (no manifest, no
hashes, no signature).

The archive is synthetic but real: ffmpeg encodes one hour of 640x360 25 fps
H.264 (GOP 2 s) into sixty 60 s fragmented MP4 segments; every source's
directory gets hard links to them under the archive's layout
(media/<source>/<day>/<start_us>.mp4), and vigild indexes them at its first
start as files a crash left without rows (it hashes each one). Its sources
point at a closed port, so it records nothing meanwhile.

usage: bench_export.py [--build DIR] [--results FILE] [--dir D]
"""
import argparse
import datetime
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

SECTION = "## Evidence export (bench/bench_export.py)"
SOURCES = 4
SEGMENTS = 60
SEG_S = 60


def log(msg):
    print(msg, flush=True)


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


def make_segments(d):
    os.makedirs(d, exist_ok=True)
    if len([n for n in os.listdir(d) if n.endswith(".mp4")]) == SEGMENTS:
        return
    log("encoding one hour of 640x360 H.264 into %d segments..." % SEGMENTS)
    run(["ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i",
         "testsrc2=size=640x360:rate=25", "-t", str(SEGMENTS * SEG_S), "-c:v", "libx264",
         "-preset", "ultrafast", "-b:v", "600k", "-g", "50", "-keyint_min", "50",
         "-sc_threshold", "0", "-f", "segment", "-segment_time", str(SEG_S),
         "-segment_format", "mp4", "-segment_format_options",
         "movflags=+frag_keyframe+empty_moov+default_base_moof", "-reset_timestamps", "1",
         os.path.join(d, "seg%03d.mp4")])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--results", default=None)
    ap.add_argument("--dir", default=None)
    args = ap.parse_args()
    root = args.dir or tempfile.mkdtemp(prefix="vigil-bench-export-")
    seg_dir = os.path.join(root, "segments")
    make_segments(seg_dir)
    data = os.path.join(root, "data")
    shutil.rmtree(data, ignore_errors=True)
    base_us = (int(time.time()) - 3 * 3600) // 60 * 60 * 1000000
    day = datetime.datetime.utcfromtimestamp(base_us / 1e6).strftime("%Y-%m-%d")
    names = ["s%d" % i for i in range(SOURCES)]
    conf = os.path.join(root, "vigil.conf")
    with open(conf, "w") as f:
        f.write("[server]\ndata_dir = %s\nlog_level = warning\nhttp_listen =\n"
                "[archive]\nsegment_seconds = 60\n" % data)
        for s in names:
            f.write("[source %s]\nurl = rtsp://127.0.0.1:9/none\nkind = video\n" % s)
    ctl = [os.path.join(args.build, "vigilctl"), "-c", conf]
    # A first start makes the (empty) archive: vigild refuses a data_dir
    # that holds files but no archive.
    first = subprocess.Popen([os.path.join(args.build, "vigild"), "-c", conf],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while subprocess.run(ctl + ["segments", names[0], "--json"],
                         capture_output=True).returncode != 0:
        if time.monotonic() > deadline or first.poll() is not None:
            raise SystemExit("vigild did not start")
        time.sleep(0.2)
    first.terminate()
    first.wait(30)
    for s in names:
        d = os.path.join(data, "media", s, day)
        os.makedirs(d)
        for i in range(SEGMENTS):
            os.link(os.path.join(seg_dir, "seg%03d.mp4" % i),
                    os.path.join(d, "%d.mp4" % (base_us + i * SEG_S * 1000000)))
    vigild = subprocess.Popen([os.path.join(args.build, "vigild"), "-c", conf],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 600
    while True:
        p = subprocess.run(ctl + ["segments", names[-1], "--json"], capture_output=True,
                           text=True)
        if p.returncode == 0 and p.stdout.count('"id"') >= SEGMENTS:
            break
        if time.monotonic() > deadline:
            raise SystemExit("vigild did not index the segments")
        time.sleep(0.5)
    vigild.terminate()
    vigild.wait(30)
    media_bytes = sum(os.path.getsize(os.path.join(seg_dir, n)) for n in os.listdir(seg_dir))
    frm = "%.6f" % (base_us / 1e6)
    to = "%.6f" % (base_us / 1e6 + SEGMENTS * SEG_S)
    out = os.path.join(root, "vigil.zip")
    # vigil
    t0 = time.monotonic()
    run(ctl + ["export", "--bundle", "--case", "BENCH-1", "--reason", "benchmark"] + names
        + ["--from", frm, "--to", to, "-o", out])
    t_vigil = time.monotonic() - t0
    z_vigil = os.path.getsize(out)
    t0 = time.monotonic()
    run([os.path.join(args.build, "vigilctl"), "verify-export", out])
    t_verify = time.monotonic() - t0
    # the peer
    peer = os.path.join(root, "peer")
    shutil.rmtree(peer, ignore_errors=True)
    os.makedirs(peer)
    t0 = time.monotonic()
    for s in names:
        d = os.path.join(data, "media", s, day)
        lst = os.path.join(peer, s + ".txt")
        with open(lst, "w") as f:
            for n in sorted(os.listdir(d)):
                f.write("file '%s'\n" % os.path.join(d, n))
        run(["ffmpeg", "-nostdin", "-v", "error", "-f", "concat", "-safe", "0", "-i", lst,
             "-c", "copy", os.path.join(peer, s + ".mp4")])
    t_concat = time.monotonic() - t0
    run(["zip", "-0", "-q", os.path.join(peer, "peer.zip")]
        + [os.path.join(peer, s + ".mp4") for s in names])
    t_peer = time.monotonic() - t0
    z_peer = os.path.getsize(os.path.join(peer, "peer.zip"))
    rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                         text=True).stdout.strip()
    text = "\n".join([
        SECTION, "",
        "Run %s UTC by `python3 bench/bench_export.py --build %s`, git %s." % (
            datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M"), args.build, rev),
        "",
        "- Machine: %d CPUs (shared), Linux %s; `ffmpeg` %s" % (
            os.cpu_count(), platform.release(),
            run(["ffmpeg", "-version"]).stdout.split("\n")[0].split(" ")[2]),
        "- Archive: %d sources x %d segments of %d s (640x360 25 fps H.264, GOP 2 s, "
        "%.1f MB per source-hour), indexed by vigild" % (SOURCES, SEGMENTS, SEG_S,
                                                          media_bytes / 1e6),
        "- vigil: `vigilctl export --bundle --case BENCH-1 --reason benchmark s0 s1 s2 s3 "
        "--from T --to T+1h -o vigil.zip` (remux per source, SHA-256 of every file, "
        "manifest, minisign signature, zip stored, fsync, rename)",
        "- peer: `ffmpeg -f concat -safe 0 -i LIST -c copy sN.mp4` per source, then "
        "`zip -0 peer.zip s0.mp4 ... s3.mp4` (no hashes, no signature, no fsync)",
        "",
        "| | wall time | zip bytes |",
        "|---|---|---|",
        "| vigil bundle | %.1f s | %d |" % (t_vigil, z_vigil),
        "| ffmpeg concat x4 + zip -0 | %.1f s (concat %.1f s) | %d |" % (t_peer, t_concat,
                                                                       z_peer),
        "| ratio vigil / peer | %.2f | %.3f |" % (t_vigil / t_peer, z_vigil / z_peer),
        "",
        "`vigilctl verify-export` of the bundle (re-hashing every byte): %.1f s." % t_verify,
        ""])
    log(text)
    if args.results:
        with open(args.results) as f:
            old = f.read()
        if SECTION in old:
            head, rest = old.split(SECTION, 1)
            nxt = rest.find("\n## ")
            old = head + (rest[nxt + 1:] if nxt >= 0 else "")
        with open(args.results, "w") as f:
            f.write(old.rstrip("\n") + "\n\n" + text)
    if not args.dir:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
