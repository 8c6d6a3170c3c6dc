#!/usr/bin/env python3
"""Ingest benchmark: vigild against one `ffmpeg -c copy -f segment` per camera.

For each stream count K, a camsim in bench mode serves the same 1080p25 H.264
clip on K mounts. Phase A records all K with ONE vigild; phase B records them
with K ffmpeg processes (the recipe Frigate uses). The phases run one after the
other, never together, so they do not compete for the cores. In each phase the
process(es) are sampled from /proc every 0.5 s over a window that opens a
warm-up after every stream is seen writing and lasts --seconds.

Afterwards the recordings are checked: vigild's index must list contiguous
segments covering the window ("zero missing segments"), and the files of both
phases are opened with ffprobe.

The results replace the "## Ingest (bench/ingest.py)" section of
bench/RESULTS.md; other sections of that file are left as they are.

Python 3 standard library only; needs ffmpeg and ffprobe on PATH.
"""

import argparse
import datetime as dt
import hashlib
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

SECTION_TITLE = "## Ingest (bench/ingest.py)"
SAMPLE_PERIOD = 0.5
CLK_TCK = os.sysconf("SC_CLK_TCK")
KIB_PER_MIB = 1024.0

# Reference targets (from the project plan), checked at the largest K.
TARGET_CPU_RATIO = 0.8
TARGET_RSS_RATIO = 0.25

MEDIA_SECONDS = 90  # camsim loops the clip; 90 s keeps loops rare and the file small
PROBE_LIMIT = 128   # files ffprobe'd per phase, spread over all streams
CONTIGUITY_TOLERANCE_S = 0.001
COVERAGE_SLACK_S = 4.0


def log(msg):
    stamp = time.strftime("%H:%M:%S")
    print(f"[ingest {stamp}] {msg}", file=sys.stderr, flush=True)


class BenchError(Exception):
    pass


# ---------------------------------------------------------------- processes

class Children:
    """Every child runs in its own process group; kill_all() ends them all."""

    def __init__(self):
        self.procs = []

    def spawn(self, argv, **kw):
        p = subprocess.Popen(argv, start_new_session=True, stdin=subprocess.DEVNULL, **kw)
        self.procs.append(p)
        return p

    @staticmethod
    def signal_group(p, sig):
        if p.poll() is not None:
            return
        try:
            os.killpg(p.pid, sig)
        except ProcessLookupError:
            pass

    def stop(self, procs, timeout):
        """SIGTERM, wait up to timeout, then SIGKILL. Returns {pid: (rc, killed)}."""
        for p in procs:
            self.signal_group(p, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        out = {}
        for p in procs:
            left = max(0.0, deadline - time.monotonic())
            killed = False
            try:
                p.wait(timeout=left)
            except subprocess.TimeoutExpired:
                self.signal_group(p, signal.SIGKILL)
                killed = True
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    pass
            out[p.pid] = (p.returncode, killed)
        return out

    def kill_all(self):
        for p in self.procs:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        self.procs = []


def run(argv, timeout, check=True):
    r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       timeout=timeout)
    if check and r.returncode != 0:
        raise BenchError(f"{' '.join(argv)} failed ({r.returncode}): {r.stderr.strip()[:500]}")
    return r


# ---------------------------------------------------------------- /proc

def proc_cpu_ticks(pid):
    """utime + stime of the whole process (all threads), or None if gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # comm may hold spaces or parentheses: the fields start after the last ')'.
    fields = data[data.rindex(")") + 2:].split()
    return int(fields[11]) + int(fields[12])


def proc_mem_kib(pid):
    """(VmRSS, VmHWM) in KiB, or None if the process is gone."""
    rss = hwm = None
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
                elif line.startswith("VmHWM:"):
                    hwm = int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        return None
    if rss is None:
        return None  # zombie
    return rss, hwm


def proc_write_bytes(pid):
    """Bytes the process caused to be sent to the block layer (/proc/PID/io), or 0."""
    try:
        with open(f"/proc/{pid}/io") as f:
            for line in f:
                if line.startswith("write_bytes:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return 0


def system_busy_ticks():
    """(busy, total) jiffies over all CPUs from /proc/stat."""
    with open("/proc/stat") as f:
        parts = f.readline().split()[1:]
    vals = [int(x) for x in parts[:8]]
    idle = vals[3] + vals[4]
    total = sum(vals)
    return total - idle, total


def dir_bytes(path):
    total = 0
    stack = [path]
    while stack:
        d = stack.pop()
        try:
            with os.scandir(d) as it:
                for e in it:
                    try:
                        if e.is_dir(follow_symlinks=False):
                            stack.append(e.path)
                        elif e.is_file(follow_symlinks=False):
                            total += e.stat(follow_symlinks=False).st_size
                    except FileNotFoundError:
                        pass
        except FileNotFoundError:
            pass
    return total


def list_files(path, suffix):
    found = []
    for root, _dirs, files in os.walk(path):
        for name in files:
            if name.endswith(suffix):
                found.append(os.path.join(root, name))
    return sorted(found)


# ---------------------------------------------------------------- measuring

class Sampler:
    """Samples CPU and memory of a set of processes on a fixed 0.5 s grid."""

    def __init__(self, pids, camsim_pid):
        self.pids = list(pids)
        self.camsim_pid = camsim_pid
        self.rss_sums = []
        self.last_ticks = {}
        self.last_hwm = {}
        self.vanished = set()

    def _poll(self):
        rss_sum = 0
        for pid in self.pids:
            t = proc_cpu_ticks(pid)
            m = proc_mem_kib(pid)
            if t is None or m is None:
                self.vanished.add(pid)
                continue
            self.last_ticks[pid] = t
            rss_sum += m[0]
            if m[1] is not None:
                self.last_hwm[pid] = m[1]
        self.rss_sums.append(rss_sum)

    def measure(self, seconds, dirs_for_bytes):
        for pid in self.pids:
            self.last_ticks[pid] = proc_cpu_ticks(pid) or 0
        start_ticks = dict(self.last_ticks)
        cam0 = proc_cpu_ticks(self.camsim_pid) or 0
        sys0 = system_busy_ticks()
        bytes0 = sum(dir_bytes(d) for d in dirs_for_bytes)
        disk0 = sum(proc_write_bytes(p) for p in self.pids)
        wall0 = time.time()
        t0 = time.monotonic()
        self._poll()
        i = 1
        last_report = t0
        while True:
            target = t0 + i * SAMPLE_PERIOD
            if target > t0 + seconds:
                break
            delay = target - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            self._poll()
            i += 1
            now = time.monotonic()
            if now - last_report >= 15:
                log(f"  measuring: {now - t0:.0f}/{seconds} s, RSS sum "
                    f"{self.rss_sums[-1] / KIB_PER_MIB:.1f} MiB")
                last_report = now
        t1 = time.monotonic()
        wall1 = time.time()
        bytes1 = sum(dir_bytes(d) for d in dirs_for_bytes)
        disk1 = sum(proc_write_bytes(p) for p in self.pids)
        cam1 = proc_cpu_ticks(self.camsim_pid) or cam0
        sys1 = system_busy_ticks()
        elapsed = t1 - t0
        cpu_ticks = sum(self.last_ticks[p] - start_ticks[p] for p in self.pids)
        return {
            "wall_start": wall0,
            "wall_end": wall1,
            "elapsed": elapsed,
            "samples": len(self.rss_sums),
            "cpu_seconds": cpu_ticks / CLK_TCK,
            "peak_rss_kib": max(self.rss_sums) if self.rss_sums else 0,
            "hwm_kib": sum(self.last_hwm.values()),
            "camsim_cpu_seconds": (cam1 - cam0) / CLK_TCK,
            "system_busy_fraction": (sys1[0] - sys0[0]) / max(1, sys1[1] - sys0[1]),
            "bytes_written": bytes1 - bytes0,
            # block-layer writes (data, journal of fsyncs): their ratio to the
            # bytes the files grew by is the write amplification
            "disk_write_bytes": disk1 - disk0,
            "vanished": sorted(self.vanished),
        }


def wait_growing(dirs, must_live, timeout, what, stream_procs=None, restart=None,
                 stall_after=15.0, max_restarts=3):
    """Waits until every directory's byte count has grown since it was first
    seen non-empty, i.e. every stream is connected and writing.

    With stream_procs/restart (one process per stream, as in the ffmpeg phase),
    a stream whose process exits, or that has not started writing stall_after
    seconds after its process started, gets its process replaced, as a
    supervisor such as Frigate's would do. Returns the number of restarts."""
    first = {}
    started = {i: time.monotonic() for i in range(len(dirs))}
    restarts = {i: 0 for i in range(len(dirs))}
    deadline = time.monotonic() + timeout
    growing = set()
    while time.monotonic() < deadline:
        for name, p in must_live:
            if p.poll() is not None:
                raise BenchError(f"{name} exited with {p.returncode} before all {what} streams "
                                 f"were writing")
        for i, d in enumerate(dirs):
            if i in growing:
                if stream_procs is not None and stream_procs[i].poll() is not None:
                    raise BenchError(f"{what} for stream {i} exited with "
                                     f"{stream_procs[i].returncode} after it started writing")
                continue
            b = dir_bytes(d)
            if d not in first:
                if b > 0:
                    first[d] = b
            elif b > first[d]:
                growing.add(i)
                continue
            if restart is None:
                continue
            exited = stream_procs[i].poll() is not None
            stalled = time.monotonic() - started[i] > stall_after
            if exited or stalled:
                if restarts[i] >= max_restarts:
                    raise BenchError(f"{what}: stream {i} not writing after {max_restarts} "
                                     f"restarts")
                why = f"exited with {stream_procs[i].returncode}" if exited else \
                    f"wrote nothing in {stall_after:g} s"
                log(f"  {what} for stream {i} {why}; restarting it")
                restart(i)
                restarts[i] += 1
                started[i] = time.monotonic()
                first.pop(d, None)
        if len(growing) == len(dirs):
            return sum(restarts.values())
        time.sleep(0.25)
    missing = [i for i in range(len(dirs)) if i not in growing]
    raise BenchError(f"{what}: only {len(growing)}/{len(dirs)} streams writing after "
                     f"{timeout:g} s (not writing: {missing[:16]})")


# ---------------------------------------------------------------- checks

def parse_rfc3339(s):
    if s.endswith("Z"):
        s = s[:-1] + "+00:00"
    return dt.datetime.fromisoformat(s).timestamp()


def ffprobe(path):
    """Returns (ok, info dict or error text)."""
    argv = ["ffprobe", "-v", "error", "-count_packets", "-of", "json",
            "-show_entries", "stream=codec_type,codec_name,width,height,nb_read_packets"
            ":format=duration", path]
    try:
        r = run(argv, timeout=120, check=False)
    except subprocess.TimeoutExpired:
        return False, "ffprobe timed out"
    if r.returncode != 0:
        return False, r.stderr.strip()[:300] or f"exit {r.returncode}"
    try:
        info = json.loads(r.stdout)
    except ValueError:
        return False, "unparsable ffprobe output"
    video = [s for s in info.get("streams", []) if s.get("codec_type") == "video"]
    if len(video) != 1 or video[0].get("codec_name") != "h264":
        return False, f"unexpected streams {info.get('streams')}"
    if int(video[0].get("nb_read_packets") or 0) <= 0:
        return False, "no packets"
    try:
        duration = float(info.get("format", {}).get("duration"))
    except (TypeError, ValueError):
        return False, "no duration"
    if duration <= 0:
        return False, "zero duration"
    if r.stderr.strip():
        return False, "ffprobe reported: " + r.stderr.strip()[:300]
    return True, {"duration": duration, "packets": int(video[0]["nb_read_packets"]),
                  "width": video[0].get("width"), "height": video[0].get("height")}


def spread_sample(items, limit):
    if len(items) <= limit:
        return list(items)
    step = len(items) / limit
    return [items[int(i * step)] for i in range(limit)]


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def check_vigil_segments(vigilctl, conf, data_dir, sources, wall_start, wall_end, seconds):
    """Zero missing segments: contiguous per source, covering the window."""
    res = {"segments": 0, "gaps": [], "short_coverage": [], "probe_ok": 0, "probe_total": 0,
           "probe_failures": [], "hash_mismatch": [], "max_duration_error": 0.0,
           "per_source": {}}
    window = wall_end - wall_start
    need = max(0.0, seconds - COVERAGE_SLACK_S)
    sampled = []
    for name in sources:
        r = run([vigilctl, "-c", conf, "segments", name, "--json"], timeout=60)
        segs = json.loads(r.stdout)
        segs.sort(key=lambda s: s["start"])
        res["segments"] += len(segs)
        spans = []
        prev_end = None
        for s in segs:
            a, b = parse_rfc3339(s["start"]), parse_rfc3339(s["end"])
            if prev_end is not None and abs(a - prev_end) > CONTIGUITY_TOLERANCE_S:
                res["gaps"].append({"source": name, "after": prev_end_text, "next_start": s["start"],
                                    "gap_s": round(a - prev_end, 3)})
            prev_end, prev_end_text = b, s["end"]
            spans.append((a, b))
        covered = 0.0
        for a, b in spans:
            covered += max(0.0, min(b, wall_end) - max(a, wall_start))
        res["per_source"][name] = {"segments": len(segs), "covered_s": round(covered, 3)}
        if covered < min(need, window):
            res["short_coverage"].append({"source": name, "covered_s": round(covered, 3),
                                          "window_s": round(window, 3)})
        sampled.extend((name, s) for s in segs)
    for name, s in spread_sample(sampled, PROBE_LIMIT):
        path = os.path.join(data_dir, s["path"])
        res["probe_total"] += 1
        ok, info = ffprobe(path)
        if not ok:
            res["probe_failures"].append(f"{s['path']}: {info}")
            continue
        res["probe_ok"] += 1
        want = parse_rfc3339(s["end"]) - parse_rfc3339(s["start"])
        res["max_duration_error"] = max(res["max_duration_error"], abs(info["duration"] - want))
        try:
            if os.path.getsize(path) != s["bytes"] or sha256_file(path) != s["sha256"]:
                res["hash_mismatch"].append(s["path"])
        except OSError as e:
            res["hash_mismatch"].append(f"{s['path']}: {e}")
    return res


def check_ffmpeg_outputs(out_dirs):
    res = {"files": 0, "probe_ok": 0, "probe_total": 0, "probe_failures": [],
           "recorded_s": [], "per_stream_files": []}
    files = []
    for d in out_dirs:
        fs = list_files(d, ".mp4")
        res["per_stream_files"].append(len(fs))
        files.extend(fs)
    res["files"] = len(files)
    per_dir = {d: 0.0 for d in out_dirs}
    for path in spread_sample(files, PROBE_LIMIT):
        res["probe_total"] += 1
        ok, info = ffprobe(path)
        if not ok:
            res["probe_failures"].append(f"{os.path.relpath(path, os.path.dirname(out_dirs[0]))}: {info}")
            continue
        res["probe_ok"] += 1
        per_dir[os.path.dirname(path)] += info["duration"]
    if len(files) <= PROBE_LIMIT:
        res["recorded_s"] = [per_dir[d] for d in out_dirs]
    return res


# ---------------------------------------------------------------- phases

def start_camsim(children, camsim, media, k, work):
    out_path = os.path.join(work, "camsim.out")
    err_path = os.path.join(work, "camsim.err")
    argv = [camsim, "--port", "0", "--bench-file", media, "--bench-mounts", str(k)]
    # stdout goes to a file, not a pipe: camsim keeps printing a line per client
    # and must never block on a reader that is busy sampling.
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        p = children.spawn(argv, stdout=out, stderr=err)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with open(out_path, errors="replace") as f:
            m = re.search(r"^READY port=(\d+)$", f.read(), re.M)
        if m:
            return p, int(m.group(1)), argv
        if p.poll() is not None:
            with open(err_path, errors="replace") as f:
                raise BenchError(f"camsim exited ({p.returncode}): {f.read().strip()[:500]}")
        time.sleep(0.1)
    raise BenchError("camsim did not print READY within 60 s")


def phase_vigild(children, args, k, port, camsim_proc, work):
    data_dir = os.path.join(work, "vigil-data")
    os.makedirs(data_dir)
    conf = os.path.join(work, "vigil.conf")
    sources = [f"s{i}" for i in range(k)]
    # HTTP off: the benchmark measures ingest, and must not depend on (or
    # collide over) vigild's default web port.
    lines = ["[server]", f"data_dir = {data_dir}", "log_level = warning", "http_listen =", "",
             "[archive]", "segment_seconds = 60"]
    if args.sync_seconds:
        lines.append(f"sync_seconds = {args.sync_seconds}")
    lines.append("")
    for i, name in enumerate(sources):
        lines += [f"[source {name}]", f"url = rtsp://127.0.0.1:{port}/bench{i}",
                  "kind = video", ""]
    with open(conf, "w") as f:
        f.write("\n".join(lines))
    log_path = os.path.join(work, "vigild.log")
    argv = [args.vigild, "-c", conf]
    log(f"phase A (K={k}): starting one vigild for {k} sources")
    with open(log_path, "wb") as lf:
        p = children.spawn(argv, stdout=lf, stderr=subprocess.STDOUT)
    src_dirs = [os.path.join(data_dir, "media", n) for n in sources]
    wait_growing(src_dirs, [("vigild", p), ("camsim", camsim_proc)], args.connect_timeout + k, "vigild")
    log(f"phase A (K={k}): all {k} sources writing; warm-up {args.warmup} s")
    time.sleep(args.warmup)
    if p.poll() is not None:
        raise BenchError(f"vigild exited with {p.returncode} during warm-up")
    log(f"phase A (K={k}): measuring {args.seconds} s")
    m = Sampler([p.pid], camsim_proc.pid).measure(args.seconds, src_dirs)
    if camsim_proc.poll() is not None:
        raise BenchError(f"camsim exited with {camsim_proc.returncode} during the vigild window")
    alive = p.poll() is None
    log(f"phase A (K={k}): stopping vigild (SIGTERM)")
    t = time.monotonic()
    stop = children.stop([p], timeout=60)[p.pid]
    m["stop_seconds"] = time.monotonic() - t
    m["exit_code"], m["killed"] = stop
    m["alive_through_window"] = alive
    with open(log_path, errors="replace") as f:
        log_lines = [ln.rstrip("\n") for ln in f if ln.strip()]
    m["log_errors"] = [ln for ln in log_lines if ln.startswith("<3>") or ln.startswith("<2>")]
    m["log_warnings"] = [ln for ln in log_lines if ln.startswith("<4>")]
    m["log_other"] = [ln for ln in log_lines if not re.match(r"<[0-7]>", ln)]
    log(f"phase A (K={k}): checking segments")
    m["check"] = check_vigil_segments(args.vigilctl, conf, data_dir, sources, m["wall_start"],
                                      m["wall_end"], args.seconds)
    m["argv"] = argv
    m["conf_example"] = "\n".join(ln.replace(data_dir, "/tmp/.../vigil-data")
                                  .replace(f":{port}/", ":PORT/")
                                  for ln in lines[:12]).rstrip()
    shutil.rmtree(data_dir, ignore_errors=True)
    return m


def ffmpeg_argv(url, out_dir):
    return ["ffmpeg", "-nostdin", "-loglevel", "error", "-rtsp_transport", "tcp", "-i", url,
            "-c", "copy", "-f", "segment", "-segment_time", "60", "-segment_format", "mp4",
            "-reset_timestamps", "1", os.path.join(out_dir, "%03d.mp4")]


def phase_ffmpeg(children, args, k, port, camsim_proc, work):
    root = os.path.join(work, "ffmpeg-out")
    out_dirs = []
    procs = []
    log(f"phase B (K={k}): starting {k} ffmpeg processes")

    def spawn(i):
        argv = ffmpeg_argv(f"rtsp://127.0.0.1:{port}/bench{i}", out_dirs[i])
        with open(os.path.join(work, f"ffmpeg-{i}.log"), "ab") as lf:
            return children.spawn(argv, stdout=lf, stderr=subprocess.STDOUT)

    def restart(i):
        children.stop([procs[i]], timeout=10)
        shutil.rmtree(out_dirs[i], ignore_errors=True)
        os.makedirs(out_dirs[i])
        procs[i] = spawn(i)

    for i in range(k):
        d = os.path.join(root, f"bench{i}")
        os.makedirs(d)
        out_dirs.append(d)
        procs.append(spawn(i))
    restarts = wait_growing(out_dirs, [("camsim", camsim_proc)], args.connect_timeout + k, "ffmpeg",
                            stream_procs=procs, restart=restart)
    log(f"phase B (K={k}): all {k} outputs writing; warm-up {args.warmup} s")
    time.sleep(args.warmup)
    for p in procs:
        if p.poll() is not None:
            raise BenchError(f"an ffmpeg exited with {p.returncode} during warm-up")
    log(f"phase B (K={k}): measuring {args.seconds} s")
    m = Sampler([p.pid for p in procs], camsim_proc.pid).measure(args.seconds, out_dirs)
    if camsim_proc.poll() is not None:
        raise BenchError(f"camsim exited with {camsim_proc.returncode} during the ffmpeg window")
    m["died_in_window"] = sum(1 for p in procs if p.poll() is not None)
    m["restarts"] = restarts
    log(f"phase B (K={k}): stopping ffmpeg (SIGTERM)")
    stops = children.stop(procs, timeout=60)
    m["killed"] = sum(1 for rc, killed in stops.values() if killed)
    m["nonzero_exit"] = sum(1 for rc, killed in stops.values() if rc not in (0, 255, -15))
    errs = []
    for i in range(k):
        with open(os.path.join(work, f"ffmpeg-{i}.log"), errors="replace") as f:
            errs += [f"bench{i}: {ln.strip()}" for ln in f if ln.strip()]
    m["log_lines"] = errs
    log(f"phase B (K={k}): checking output files")
    m["check"] = check_ffmpeg_outputs(out_dirs)
    m["argv"] = ffmpeg_argv(f"rtsp://127.0.0.1:{port}/bench<i>", os.path.join(work, "bench<i>"))
    shutil.rmtree(root, ignore_errors=True)
    return m


def run_k(args, k):
    children = Children()
    work = tempfile.mkdtemp(prefix=f"vigil-bench-ingest-k{k}-")
    try:
        camsim, port, cam_argv = start_camsim(children, args.camsim, args.media, k, work)
        log(f"K={k}: camsim ready on port {port}")
        a = phase_vigild(children, args, k, port, camsim, work)
        time.sleep(args.pause)
        b = phase_ffmpeg(children, args, k, port, camsim, work)
        cam_alive = camsim.poll() is None
        children.stop([camsim], timeout=15)
        return {"k": k, "vigild": a, "ffmpeg": b, "camsim_argv": cam_argv,
                "camsim_survived": cam_alive}
    finally:
        children.kill_all()
        if args.keep:
            log(f"K={k}: kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


# ---------------------------------------------------------------- report

def machine_info():
    model = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = "unknown"
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                    break
    except OSError:
        pass
    try:
        ff = run(["ffmpeg", "-version"], timeout=30).stdout.splitlines()[0]
    except (BenchError, subprocess.TimeoutExpired, IndexError):
        ff = "unknown"
    try:
        head = run(["git", "rev-parse", "--short", "HEAD"], timeout=30).stdout.strip()
        dirty = run(["git", "status", "--porcelain", "--untracked-files=no"],
                    timeout=30).stdout.strip()
        rev = head + (" with uncommitted changes" if dirty else "")
    except (BenchError, subprocess.TimeoutExpired, OSError):
        rev = "unknown"
    return {"nproc": os.cpu_count(), "cpu": model, "mem": mem, "kernel": platform.release(),
            "ffmpeg": ff, "python": platform.python_version(), "rev": rev}


def per_stream(m, k):
    cpu = m["cpu_seconds"] / m["elapsed"] / k * 100.0
    rss = m["peak_rss_kib"] / 1024.0 / k
    hwm = m["hwm_kib"] / 1024.0 / k
    mbit = m["bytes_written"] * 8 / m["elapsed"] / k / 1e6
    cam = m["camsim_cpu_seconds"] / m["elapsed"] * 100.0
    return cpu, rss, hwm, mbit, cam


def amp(m):
    return f"{m['disk_write_bytes'] / m['bytes_written']:.2f}" if m.get("bytes_written") else "n/a"


def ratio(a, b):
    return f"{a / b:.2f}×" if b > 0 else "n/a"


def shell_join(argv):
    out = []
    for a in argv:
        if re.fullmatch(r"[A-Za-z0-9_@%+=:,./<>-]+", a) and "<" not in a:
            out.append(a)
        else:
            out.append("'" + a.replace("'", "'\\''") + "'")
    return " ".join(out)


def summarize_log(lines, top=4):
    """Groups log lines that differ only in numbers, most frequent first."""
    groups = {}
    for ln in lines:
        key = re.sub(r"source=s\d+", "source=sN", re.sub(r"\b\d+\b", "N", ln))
        groups.setdefault(key, [0, ln])[0] += 1
    ranked = sorted(groups.values(), key=lambda g: -g[0])
    return "".join(f" {n}× like `{ln[:200]}`;" for n, ln in ranked[:top]).rstrip(";")


def render_k(r, seconds):
    k = r["k"]
    a, b = r["vigild"], r["ffmpeg"]
    acpu, arss, ahwm, ambit, acam = per_stream(a, k)
    bcpu, brss, bhwm, bmbit, bcam = per_stream(b, k)
    ca, cb = a["check"], b["check"]
    missing = len(ca["gaps"]) + len(ca["short_coverage"])
    rows = [
        ("CPU, % of one core per stream", f"{acpu:.2f}", f"{bcpu:.2f}", ratio(acpu, bcpu)),
        ("Peak RSS, MiB per stream", f"{arss:.2f}", f"{brss:.2f}", ratio(arss, brss)),
        ("VmHWM, MiB per stream", f"{ahwm:.2f}", f"{bhwm:.2f}", ratio(ahwm, bhwm)),
        ("Written, Mbit/s per stream", f"{ambit:.2f}", f"{bmbit:.2f}", ratio(ambit, bmbit)),
        ("Write amplification (block-layer writes / bytes written)", amp(a), amp(b), ""),
        ("camsim CPU during the window, % of one core", f"{acam:.1f}", f"{bcam:.1f}", ""),
        ("Whole machine busy during the window (all processes, % of all CPUs)", f"{a['system_busy_fraction'] * 100:.0f}%",
         f"{b['system_busy_fraction'] * 100:.0f}%", ""),
        ("Segments / files", str(ca["segments"]), str(cb["files"]), ""),
        ("Missing segments (gaps + short coverage)", str(missing),
         "not checkable (no wall-clock index)", ""),
        ("ffprobe-checked files OK", f"{ca['probe_ok']}/{ca['probe_total']}",
         f"{cb['probe_ok']}/{cb['probe_total']}", ""),
    ]
    out = [f"### K = {k} streams", "",
           "| | vigild | ffmpeg per stream | ratio |", "|---|---:|---:|---:|"]
    out += [f"| {r0} | {r1} | {r2} | {r3} |" for r0, r1, r2, r3 in rows]
    out.append("")
    notes = []
    notes.append(f"Window: vigild {a['elapsed']:.1f} s ({a['samples']} samples), ffmpeg "
                 f"{b['elapsed']:.1f} s ({b['samples']} samples). Absolute: vigild "
                 f"{a['cpu_seconds']:.1f} CPU-s, peak RSS {a['peak_rss_kib'] / 1024:.1f} MiB; "
                 f"{k}× ffmpeg {b['cpu_seconds']:.1f} CPU-s, peak summed RSS "
                 f"{b['peak_rss_kib'] / 1024:.1f} MiB.")
    cov = [v["covered_s"] for v in ca["per_source"].values()]
    if cov:
        notes.append(f"vigild index: {ca['segments']} segments over {k} sources, window coverage "
                     f"per source {min(cov):.1f}–{max(cov):.1f} s of {a['wall_end'] - a['wall_start']:.1f} s "
                     f"(required ≥ {seconds - COVERAGE_SLACK_S:.0f} s), {len(ca['gaps'])} gap(s); "
                     f"probe duration vs index duration differs by at most "
                     f"{ca['max_duration_error'] * 1000:.0f} ms; sha256/bytes mismatches: "
                     f"{len(ca['hash_mismatch'])}.")
    for g in ca["gaps"][:10]:
        notes.append(f"gap: {g['source']} ends {g['after']}, next starts {g['next_start']} "
                     f"({g['gap_s']:+.3f} s)")
    for s in ca["short_coverage"][:10]:
        notes.append(f"short coverage: {s['source']} {s['covered_s']} s of {s['window_s']} s")
    for f in (ca["probe_failures"] + ca["hash_mismatch"])[:10]:
        notes.append(f"vigild file problem: {f}")
    stop = (f"vigild stopped {a['stop_seconds']:.1f} s after SIGTERM with exit code "
            f"{a['exit_code']}" + (" (had to be SIGKILLed)" if a["killed"] else ""))
    if not a["alive_through_window"]:
        stop += "; it had exited during the window"
    notes.append(stop + ".")
    notes.append(f"vigild log: {len(a['log_errors'])} error line(s), {len(a['log_warnings'])} "
                 f"warning line(s), {len(a['log_other'])} other line(s)."
                 + summarize_log(a["log_errors"] + a["log_warnings"] + a["log_other"]))
    per = cb["per_stream_files"]
    extra = ""
    if cb["recorded_s"]:
        extra = (f", recorded {min(cb['recorded_s']):.1f}–{max(cb['recorded_s']):.1f} s per "
                 f"stream by ffprobe duration")
    notes.append(f"ffmpeg: {cb['files']} files ({min(per) if per else 0}–{max(per) if per else 0} "
                 f"per stream){extra}; {b['restarts']} process(es) restarted before the "
                 f"window because their stream never started; {b['died_in_window']} exited "
                 f"during the window, "
                 f"{b['killed']} needed SIGKILL, {b['nonzero_exit']} unexpected exit codes, "
                 f"{len(b['log_lines'])} log line(s)."
                 + summarize_log([ln.split(": ", 1)[-1] for ln in b["log_lines"]]))
    for f in cb["probe_failures"][:10]:
        notes.append(f"ffmpeg file problem: {f}")
    if b["restarts"]:
        notes.append("An ffmpeg whose output stayed empty for 15 s after connecting (camsim "
                     "had accepted PLAY but sent nothing) was killed and started again, as a "
                     "supervisor would; vigild recovers from the same condition by itself "
                     "(read timeout, reconnect: see its log line above if any).")
    if not r["camsim_survived"]:
        notes.append("camsim exited before the end of the run.")
    out += [f"- {n}" for n in notes]
    out.append("")
    return out, (acpu, bcpu, arss, brss, missing)


def render(results, info, args, started, cmdline):
    lines = [SECTION_TITLE, ""]
    lines.append(f"Run {started.strftime('%Y-%m-%d %H:%M UTC')} by `{cmdline}`.")
    lines.append("")
    lines.append(f"- Machine: {info['nproc']} CPUs, {info['cpu']}, {info['mem']} RAM, "
                 f"Linux {info['kernel']}, Python {info['python']}")
    lines.append(f"- FFmpeg: `{info['ffmpeg']}`")
    built = dt.datetime.fromtimestamp(os.path.getmtime(args.vigild), dt.timezone.utc)
    lines.append(f"- vigild: built from git {info['rev']} "
                 f"(binary of {built.strftime('%Y-%m-%d %H:%M UTC')})")
    lines.append(f"- Source: `{os.path.relpath(args.media)}` (1920×1080, 25 fps, H.264 "
                 f"~4 Mbit/s, GOP 2 s) played in real time by camsim on every mount.")
    lines.append(f"- Each K: warm-up {args.warmup:g} s after every stream is writing, then a "
                 f"{args.seconds} s window sampled every {SAMPLE_PERIOD} s from /proc "
                 f"(utime+stime from `/proc/PID/stat`, VmRSS/VmHWM from `/proc/PID/status`). "
                 f"The phases run one after the other, never together. The whole-machine "
                 f"figure counts everything on the host: when it is well above the measured "
                 f"processes plus camsim, other work was competing and the CPU figures are "
                 f"noisier.")
    lines.append("- CPU % per stream = CPU seconds in the window / window seconds / K × 100. "
                 "RSS per stream = highest VmRSS sample (for ffmpeg: of the sum over the K "
                 "processes at one instant) / K. VmHWM for ffmpeg is the sum of the per-process "
                 "high-water marks. Ratio = vigild / ffmpeg (lower is better for vigild).")
    lines.append("- Missing segments: after SIGTERM, `vigilctl segments SOURCE --json` for each "
                 "source must be contiguous (start = previous end within 1 ms) and cover at "
                 f"least window − {COVERAGE_SLACK_S:g} s; files are opened with `ffprobe "
                 "-count_packets` and, for vigild, checked against the index's bytes and sha256 "
                 f"(up to {PROBE_LIMIT} files per phase).")
    lines.append("")
    lines.append("Commands (K = stream count, PORT = camsim's port, i = 0..K-1):")
    lines.append("")
    r0 = results[0]
    cam = list(r0["camsim_argv"])
    cam[cam.index("--bench-mounts") + 1] = "K"
    cam[0] = os.path.relpath(cam[0])
    cam[cam.index("--bench-file") + 1] = os.path.relpath(args.media)
    lines.append("```")
    lines.append(shell_join(cam))
    lines.append(f"{os.path.relpath(args.vigild)} -c vigil.conf        # phase A, one process")
    ff = ffmpeg_argv("rtsp://127.0.0.1:PORT/bench$i", "OUT$i")
    lines.append(" ".join(ff) + "   # phase B, one per stream")
    lines.append(f"{os.path.relpath(args.vigilctl)} -c vigil.conf segments s$i --json")
    lines.append("```")
    lines.append("")
    lines.append("vigil.conf (one `[source]` per stream):")
    lines.append("")
    lines.append("```ini")
    lines.append(r0["vigild"]["conf_example"])
    lines.append("...")
    lines.append("```")
    lines.append("")
    verdict = None
    for r in results:
        body, nums = render_k(r, args.seconds)
        lines += body
        verdict = (r["k"], nums)
    k, (acpu, bcpu, arss, brss, missing) = verdict
    lines.append("### Targets")
    lines.append("")
    cr = acpu / bcpu if bcpu else float("inf")
    rr = arss / brss if brss else float("inf")
    big = max(r["k"] for r in results)
    if k != 32:
        lines.append(f"The targets are stated for K = 32; this run's largest K is {big}, so the "
                     f"comparison below is for K = {big} and only indicative.")
        lines.append("")
    lines.append(f"- CPU per stream: target vigild ≤ {TARGET_CPU_RATIO}× ffmpeg; measured "
                 f"{cr:.2f}× at K = {k} — **{'met' if cr <= TARGET_CPU_RATIO else 'NOT met'}**.")
    lines.append(f"- RSS per stream: target vigild ≤ {TARGET_RSS_RATIO}× ffmpeg; measured "
                 f"{rr:.2f}× at K = {k} — **{'met' if rr <= TARGET_RSS_RATIO else 'NOT met'}**.")
    lines.append(f"- Zero missing segments: {missing} missing at K = {k} — "
                 f"**{'met' if missing == 0 else 'NOT met'}**; over all K: "
                 f"{sum(len(r['vigild']['check']['gaps']) + len(r['vigild']['check']['short_coverage']) for r in results)} missing.")
    lines.append("")
    return "\n".join(lines)


def write_section(path, section):
    old = ""
    if os.path.exists(path):
        with open(path) as f:
            old = f.read()
    if not old.strip():
        new = "# vigil benchmark results\n\n" + section.rstrip("\n") + "\n"
    else:
        # Replace from our heading up to the next level-2 heading (or the end).
        pat = re.compile(r"^" + re.escape(SECTION_TITLE) + r"[ \t]*\n.*?(?=^## (?!#)|\Z)",
                         re.M | re.S)
        if pat.search(old):
            new = pat.sub(lambda _m: section.rstrip("\n") + "\n\n", old, count=1)
            new = new.rstrip("\n") + "\n"
        else:
            new = old.rstrip("\n") + "\n\n" + section.rstrip("\n") + "\n"
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(new)
    os.replace(tmp, path)


# ---------------------------------------------------------------- main

def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default="build", help="build directory (default: build)")
    ap.add_argument("--streams", default="8,32", help="comma-separated stream counts (8,32)")
    ap.add_argument("--seconds", type=int, default=60, help="measurement window (60)")
    ap.add_argument("--warmup", type=float, default=5.0, help="warm-up after connect (5)")
    ap.add_argument("--connect-timeout", type=float, default=60.0,
                    help="seconds (+1 per stream) for all streams to start writing")
    ap.add_argument("--pause", type=float, default=3.0, help="idle seconds between phases")
    ap.add_argument("--results", default=None, help="results file (bench/RESULTS.md)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directories")
    ap.add_argument("--sync-seconds", type=int, default=0,
                    help="vigild's [archive] sync_seconds (default: vigild's own, 5)")
    args = ap.parse_args()
    try:
        args.streams = [int(x) for x in args.streams.split(",") if x.strip()]
    except ValueError:
        ap.error("--streams takes comma-separated integers")
    if not args.streams or any(k < 1 for k in args.streams):
        ap.error("--streams needs positive counts")
    if args.seconds < 5:
        ap.error("--seconds must be at least 5")
    return args


def main():
    args = parse_args()
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    os.chdir(repo)
    build = os.path.abspath(args.build)
    args.vigild = os.path.join(build, "vigild")
    args.vigilctl = os.path.join(build, "vigilctl")
    args.camsim = os.path.join(build, "camsim")
    args.results = os.path.abspath(args.results or os.path.join(repo, "bench", "RESULTS.md"))
    for exe in (args.vigild, args.vigilctl, args.camsim):
        if not os.access(exe, os.X_OK):
            raise BenchError(f"{exe} is missing (run make all {os.path.relpath(build)}/camsim)")
    for tool in ("ffmpeg", "ffprobe"):
        if shutil.which(tool) is None:
            raise BenchError(f"{tool} not found on PATH")

    media_dir = os.path.join(build, "bench-media")
    os.makedirs(media_dir, exist_ok=True)
    args.media = os.path.join(media_dir, f"bench-1080p25-{MEDIA_SECONDS}s.mp4")
    if not os.path.exists(args.media):
        log(f"making {os.path.relpath(args.media)} (once; takes a minute)")
    run(["sh", os.path.join(repo, "tests", "tools", "make-bench-media.sh"), args.media,
         str(MEDIA_SECONDS)], timeout=1800)

    started = dt.datetime.now(dt.timezone.utc)
    info = machine_info()
    log(f"{info['nproc']} CPUs ({info['cpu']}); streams {args.streams}, window {args.seconds} s")
    results = []
    for k in args.streams:
        r = run_k(args, k)
        results.append(r)
        acpu, arss = per_stream(r["vigild"], k)[:2]
        bcpu, brss = per_stream(r["ffmpeg"], k)[:2]
        log(f"K={k}: CPU/stream vigild {acpu:.2f}% ffmpeg {bcpu:.2f}%; RSS/stream vigild "
            f"{arss:.2f} MiB ffmpeg {brss:.2f} MiB")
    cmdline = "python3 bench/ingest.py " + " ".join(shell_join([a]) for a in sys.argv[1:])
    section = render(results, info, args, started, cmdline.strip())
    write_section(args.results, section)
    log(f"wrote {args.results}")
    print(section)
    return 0


def _terminate(signum, _frame):
    raise KeyboardInterrupt(f"signal {signum}")


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGHUP, _terminate)
    try:
        sys.exit(main())
    except BenchError as e:
        log(f"error: {e}")
        sys.exit(1)
    except subprocess.TimeoutExpired as e:
        log(f"error: timed out: {e}")
        sys.exit(1)
    except KeyboardInterrupt:
        log("interrupted")
        sys.exit(130)
