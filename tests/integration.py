#!/usr/bin/env python3
"""Integration tests: the camera simulator, a real vigild, real SQLite, ffprobe.

Each test polls for its condition with a deadline; nothing sleeps and hopes.
Ends with the line "N passed, N failed"; exit status 1 on any failure.
"""
import argparse
import json
import re
import shutil
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback

BUILD = "build"
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FRAME_S = 0.040  # one frame at 25 fps
GOP_S = 1.0      # the simulator's keyframe interval


def log(msg):
    print(msg, flush=True)


# Sanitizer builds run several times slower: `make asan` stretches every deadline.
TIMEOUT_SCALE = float(os.environ.get("VIGIL_TIMEOUT_SCALE", "1"))


def wait_for(what, cond, timeout, interval=0.1):
    """Polls cond() until it returns a truthy value; fails after timeout."""
    timeout *= TIMEOUT_SCALE
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.0f s waiting for %s" % (timeout, what))
        time.sleep(interval)


def parse_time(text):
    """RFC 3339 with ms and Z -> unix seconds (float)."""
    import calendar
    base, frac = text.rstrip("Z").split(".")
    return calendar.timegm(time.strptime(base, "%Y-%m-%dT%H:%M:%S")) + int(frac) / 1000.0


class Camsim:
    def __init__(self, args=()):
        # its stderr (GStreamer's warnings) is kept for the failure report
        self.errlog = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen([os.path.join(BUILD, "camsim"), "--port", "0"] + list(args),
                                     stdout=subprocess.PIPE, stderr=self.errlog,
                                     text=True, start_new_session=True)
        self.lines = []
        self.port = None
        ready = threading.Event()

        def reader():
            for line in self.proc.stdout:
                self.lines.append(line.strip())
                if line.startswith("READY port="):
                    self.port = int(line.split("=")[1])
                    ready.set()
        threading.Thread(target=reader, daemon=True).start()
        if not ready.wait(20):
            self.stop()
            raise RuntimeError("camsim did not start")

    def url(self, mount, creds=""):
        return "rtsp://%s127.0.0.1:%d/%s" % (creds, self.port, mount)

    def signal(self, sig, expect):
        """Sends sig and waits for the simulator's line saying it acted.
        Returns the time the signal was sent: the change happened after it,
        while the confirmation can be read late on a loaded machine."""
        n = self.lines.count(expect)
        sent = time.time()
        self.proc.send_signal(sig)
        wait_for(expect, lambda: self.lines.count(expect) > n, 10)
        return sent

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    def err_tail(self, n=3000):
        """The end of the simulator's stderr, for a failure report."""
        self.errlog.seek(0)
        return self.errlog.read()[-n:]


class Faultfs:
    """Mixed into a Vigil (or WebVigil): its vigild's file-system calls go
    through the faultfs shim (tests/tools/faultfs.c), with the rules in
    root/faults, what fired logged in root/faults.log and the rules in force
    named in root/faults.loaded. Call faultfs_init() once the Vigil is made,
    and start vigild with faultfs_env()."""

    def faultfs_init(self):
        self.faults = os.path.join(self.root, "faults")
        self.fired = os.path.join(self.root, "faults.log")
        self.loaded = os.path.join(self.root, "faults.loaded")
        self.set_faults("")

    def set_faults(self, text):
        """New rules, in force once this returns (the shim looks at the file
        at most every 50 ms and says which rules it took)."""
        tmp = self.faults + ".new"
        with open(tmp, "w") as f:
            f.write("# faultfs rules\n" + text)
        os.replace(tmp, self.faults)  # a new inode: the shim sees it changed
        if getattr(self, "proc", None) is None or self.proc.poll() is not None:
            return
        st = os.stat(self.faults)
        want = "%d %d" % (st.st_size, st.st_mtime_ns)

        def in_force():
            try:
                with open(self.loaded) as f:
                    return f.read().strip() == want
            except OSError:
                return False
        wait_for("the fault rules in force", in_force, 20)

    def fired_lines(self):
        try:
            with open(self.fired) as f:
                return f.read().splitlines()
        except FileNotFoundError:
            return []

    def faultfs_env(self, **extra):
        env = dict(os.environ, **extra)
        env["LD_PRELOAD"] = os.path.abspath(os.path.join(BUILD, "faultfs.so"))
        env["VIGIL_FAULTS_FILE"] = self.faults
        env["VIGIL_FAULTS_LOG"] = self.fired
        env["VIGIL_FAULTS_LOADED"] = self.loaded
        # an ASan vigild wants its runtime first; the shim is plain C
        env["ASAN_OPTIONS"] = (env.get("ASAN_OPTIONS", "") + ":verify_asan_link_order=0").lstrip(":")
        return env


class Vigil:
    """A vigild with its own data dir and config."""

    def __init__(self, root, sources, segment_seconds=2, extra=""):
        self.root = root
        os.makedirs(root, exist_ok=True)
        self.data = os.path.join(root, "data")
        self.conf = os.path.join(root, "vigil.conf")
        self.logpath = os.path.join(root, "vigild.log")
        # every vigild gets its own HTTP port: several run at once in this suite
        self.http_port = free_port()
        text = ("[server]\ndata_dir = %s\nlog_level = info\nhttp_listen = 127.0.0.1:%d\n"
                "[archive]\nsegment_seconds = %d\n%s") % (self.data, self.http_port,
                                                         segment_seconds, extra)
        for name, url, kind, *transport in sources:
            text += "[source %s]\nurl = %s\nkind = %s\n" % (name, url, kind)
            if transport:
                text += "rtsp_transport = %s\n" % transport[0]
        with open(self.conf, "w") as f:
            f.write(text)
        self.proc = None

    def start(self, env=None):
        self.logfile = open(self.logpath, "a")
        self.proc = subprocess.Popen([os.path.join(BUILD, "vigild"), "-c", self.conf],
                                     stdout=self.logfile, stderr=subprocess.STDOUT, env=env)
        return self

    def stop(self, sig=signal.SIGTERM, timeout=5.0):
        """Stops vigild; returns (exit code, seconds it took)."""
        if not self.proc or self.proc.poll() is not None:
            return (self.proc.returncode if self.proc else None), 0.0
        t0 = time.monotonic()
        self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout * TIMEOUT_SCALE)  # a sanitizer build is slower
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
            return "hung", time.monotonic() - t0
        self.logfile.close()
        return rc, time.monotonic() - t0

    def ctl(self, *args, check=True):
        p = subprocess.run([os.path.join(BUILD, "vigilctl"), "-c", self.conf] + list(args),
                           capture_output=True, text=True, timeout=120)
        if check and p.returncode != 0:
            raise AssertionError("vigilctl %s -> %d: %s%s" % (" ".join(args), p.returncode,
                                                             p.stdout, p.stderr))
        return p

    def segments(self, source):
        p = self.ctl("segments", source, "--json", check=False)
        if p.returncode != 0:
            return []
        return json.loads(p.stdout)

    def log_text(self):
        with open(self.logpath) as f:
            return f.read()


def ffprobe(path, entries="format=duration:stream=codec_name,codec_type"):
    count = ["-count_packets"] if "nb_read_packets" in entries else []
    p = subprocess.run(["ffprobe", "-v", "error"] + count + ["-show_entries", entries, "-of",
                                                             "json", path],
                       capture_output=True, text=True, timeout=60)
    if p.returncode != 0:
        raise AssertionError("ffprobe failed on %s: %s" % (path, p.stderr))
    return json.loads(p.stdout)


def decode_ok(path):
    """Decodes the whole file; any decoder error is a failure."""
    p = subprocess.run(["ffmpeg", "-v", "error", "-xerror", "-i", path, "-f", "null", "-"],
                       capture_output=True, text=True, timeout=120)
    return p.returncode == 0, p.stderr


# ---------------------------------------------------------------- tests

RECORDED = ["h264", "h264b", "h265", "cam-g711", "line-pcma", "line-pcmu", "line-opus", "line-aac"]
AUDIO = {"line-pcma", "line-pcmu", "line-opus", "line-aac"}
EXPECTED_CODECS = {"h264": ["h264"], "h264b": ["h264"], "h265": ["hevc"],
                   "cam-g711": ["h264", "pcm_alaw"], "line-pcma": ["pcm_alaw"],
                   "line-pcmu": ["pcm_mulaw"], "line-opus": ["opus"], "line-aac": ["aac"]}


class Suite:
    def __init__(self, tmp):
        self.tmp = tmp
        self.cam = Camsim()
        self.main = None

    def main_vigil(self):
        """One long-running vigild recording every simulator mount (shared by tests)."""
        if self.main is None:
            sources = [(m, self.cam.url(m, "user:secret@" if m == "h264" else ""),
                        "audio" if m in AUDIO else "video") for m in RECORDED]
            sources.append(("flaky", self.cam.url("flaky"), "video"))
            sources.append(("h264-udp", self.cam.url("h264"), "video", "udp"))
            self.main = Vigil(os.path.join(self.tmp, "main"), sources).start()
        return self.main

    def close(self):
        if self.main:
            self.main.stop()
        self.cam.stop()

    # -- recording
    def warm(self, sources, n):
        """Waits until each source has n segments. The shared vigild's first
        connections share one deadline: the simulator builds a pipeline per
        mount at the first DESCRIBE, and on a loaded machine (make check runs
        two suites at once) a connection can time out (10 s) and back off
        before the first one works. On a timeout the message carries what
        vigild logged for the sources still short."""
        v = self.main_vigil()
        deadline = time.monotonic() + 120 * TIMEOUT_SCALE
        for m in sources:
            try:
                wait_for("%d segments of %s" % (n, m), lambda: len(v.segments(m)) >= n,
                         max(1.0, deadline - time.monotonic()) / TIMEOUT_SCALE)
            except AssertionError as e:
                short = [s for s in sources if len(v.segments(s)) < n]
                said = [ln for ln in v.log_text().splitlines()
                        if any("source=%s " % s in ln for s in short)]
                raise AssertionError("%s; short: %s; vigild said:\n%s" % (
                    e, short, "\n".join(said[-20:])))
        return v

    def test_records_every_codec(self):
        v = self.warm(RECORDED, 3)
        for m in RECORDED:
            # bounded: the shared vigild records on while this decodes, and on
            # a loaded machine decoding every segment could fall behind for good
            segs = v.segments(m)[:6]
            for s in segs:
                path = os.path.join(v.data, s["path"])
                info = ffprobe(path)
                codecs = [st["codec_name"] for st in info["streams"]]
                assert codecs == EXPECTED_CODECS[m], "%s: codecs %s" % (m, codecs)
                ok, err = decode_ok(path)
                assert ok, "%s does not decode cleanly: %s" % (s["path"], err[:300])

    def test_indexed_duration_matches_media(self):
        v = self.main_vigil()
        for m in RECORDED:
            segs = wait_for("segments of %s" % m, lambda: v.segments(m), 30)
            for s in segs[:6]:  # bounded: more segments pile up as the suite runs
                indexed = parse_time(s["end"]) - parse_time(s["start"])
                probe = ffprobe(os.path.join(v.data, s["path"]),
                                "stream=codec_type,duration")
                # the stream segments are cut on: video, or the audio of a line
                kind = "audio" if m in AUDIO else "video"
                media = [float(st["duration"]) for st in probe["streams"]
                         if st["codec_type"] == kind][0]
                # 1 frame, plus 1 ms for the millisecond rounding of the JSON times
                assert abs(indexed - media) <= FRAME_S + 0.001, \
                    "%s %s: indexed %.3f s, media %.3f s" % (m, s["path"], indexed, media)

    def test_udp_transport_records(self):
        v = self.main_vigil()
        segs = wait_for("3 udp segments", lambda: len(v.segments("h264-udp")) >= 3 and
                        v.segments("h264-udp"), 40)
        for s in segs[:6]:
            ok, err = decode_ok(os.path.join(v.data, s["path"]))
            assert ok, err[:300]

    def test_consecutive_segments_abut(self):
        v = self.main_vigil()
        segs = wait_for("4 segments", lambda: len(v.segments("h264")) >= 4 and v.segments("h264"), 30)
        for a, b in zip(segs, segs[1:]):
            assert a["end"] == b["start"], "gap or overlap: %s .. %s" % (a["end"], b["start"])

    def test_credentials_never_logged(self):
        v = self.main_vigil()
        wait_for("h264 segment", lambda: v.segments("h264"), 30)
        assert "secret" not in v.log_text(), "password appears in the log"

    def test_check_deep_while_recording(self):
        v = self.main_vigil()
        wait_for("segments", lambda: v.segments("h265"), 30)
        p = v.ctl("check", "--deep")
        assert "ok" in p.stdout

    def test_camera_restart_leaves_gap(self):
        v = self.warm(["flaky"], 2)
        down_at = self.cam.signal(signal.SIGUSR1, "FLAKY down")
        # the segment in progress is finalized when the stream drops
        wait_for("flaky segment finalized", lambda: any(
            parse_time(s["end"]) >= down_at - 1.5 for s in v.segments("flaky")), 15)
        wait_for("10 s down", lambda: time.time() - down_at >= 10, 11)
        up_at = self.cam.signal(signal.SIGUSR2, "FLAKY up")
        segs = wait_for("flaky recording again", lambda: [
            s for s in v.segments("flaky") if parse_time(s["start"]) >= up_at - 1] and
            v.segments("flaky"), 60)
        gaps = [parse_time(b["start"]) - parse_time(a["end"]) for a, b in zip(segs, segs[1:])]
        big = [g for g in gaps if g >= 8]
        assert len(big) == 1, "expected one gap of ~10 s, gaps: %s" % gaps
        assert all(g == 0 or g >= 8 for g in gaps), "unexpected small gap: %s" % gaps

    def test_first_gop_of_a_connection_is_recorded(self):
        """libavformat hands over a connection's first keyframe without
        timestamps (and, with B-frames, the next frames without DTS): they
        are dated and recorded, not dropped with the rest of the first GOP
        (a second of video at the simulator's GOP)."""
        import urllib.request
        mounts = ("h264", "h264b")
        v = Vigil(os.path.join(self.tmp, "first-gop"),
                  [(m, self.cam.url(m), "video") for m in mounts])
        v.start()
        try:
            wait_for("two segments each",
                     lambda: all(len(v.segments(m)) >= 2 for m in mounts), 30)
            text = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % v.http_port,
                                          timeout=10).read().decode()
        finally:
            rc, _ = v.stop()
        assert rc == 0, "vigild exit %s" % rc
        for m in mounts:
            received = int(re.search(r'vigil_source_received_packets_total\{source="%s"\} (\d+)'
                                     % m, text).group(1))
            segs = v.segments(m)
            path = os.path.join(v.data, segs[0]["path"])
            first = ffprobe(path, "packet=pts,flags")["packets"][0]
            assert "K" in first["flags"], "%s: first frame is not a keyframe: %s" % (m, first)
            ok, err = decode_ok(path)
            assert ok, "%s: first segment does not decode: %s" % (m, err)
            frames = sum(int(ffprobe(os.path.join(v.data, s["path"]), "stream=nb_read_packets")
                             ["streams"][0]["nb_read_packets"]) for s in segs)
            # every frame received up to the metrics read is recorded (a
            # frame or two may be cut off at the stop); losing the first GOP
            # would miss about 25
            assert frames >= received - 3, "%s: %d frames recorded of %d received" % (
                m, frames, received)

    def test_export_across_three_segments(self):
        v = self.main_vigil()
        segs = wait_for("5 segments", lambda: len(v.segments("h264")) >= 5 and v.segments("h264"), 40)
        t_from = parse_time(segs[1]["start"]) + 0.5
        t_to = parse_time(segs[3]["end"]) - 0.5
        out = os.path.join(self.tmp, "clip.mp4")
        v.ctl("export", "h264", "--from", "%.3f" % t_from, "--to", "%.3f" % t_to, "-o", out)
        info = ffprobe(out)
        dur = float(info["format"]["duration"])
        expected = t_to - t_from
        # starts at the keyframe at or before --from: up to one GOP longer
        assert expected - FRAME_S * 2 <= dur <= expected + GOP_S + FRAME_S * 2, \
            "clip %.3f s for a %.3f s range" % (dur, expected)
        ok, err = decode_ok(out)
        assert ok, err[:300]

    def test_export_audio_line_to_wav(self):
        v = self.main_vigil()
        segs = wait_for("3 pcma segments", lambda: len(v.segments("line-pcma")) >= 3 and
                        v.segments("line-pcma"), 30)
        out = os.path.join(self.tmp, "call.wav")
        v.ctl("export", "line-pcma", "--from", segs[0]["start"], "--to", segs[2]["end"], "-o", out)
        info = ffprobe(out)
        assert [s["codec_name"] for s in info["streams"]] == ["pcm_alaw"], info
        expected = parse_time(segs[2]["end"]) - parse_time(segs[0]["start"])
        dur = float(info["format"]["duration"])
        assert abs(dur - expected) < 0.1, "wav %.3f s for %.3f s" % (dur, expected)

    def test_vigilctl_bad_input_exits_2(self):
        v = self.main_vigil()
        wait_for("index", lambda: v.segments("h264"), 30)
        assert v.ctl("segments", "nope", check=False).returncode == 2
        p = v.ctl("segments", "h264", "--from", "2026-01-02T00:00:00Z", "--to",
                  "2026-01-01T00:00:00Z", check=False)
        assert p.returncode == 2 and "before" in p.stderr, p.stderr
        assert v.ctl("segments", "h264", "--from", "yesterday", check=False).returncode == 2
        p = v.ctl("export", "nope", "--from", "0", "--to", "10", "-o", "/tmp/x.mp4", check=False)
        assert p.returncode == 2

    def test_segments_json_shape(self):
        v = self.main_vigil()
        segs = wait_for("segments", lambda: v.segments("h264"), 30)
        s = segs[0]
        assert set(s) == {"id", "source", "start", "end", "bytes", "sha256", "path"}, s
        assert len(s["sha256"]) == 64 and s["start"].endswith("Z") and len(s["start"]) == 24
        t0 = parse_time(segs[0]["start"])
        only_first = v.segments("h264")
        p = v.ctl("segments", "h264", "--json", "--from", "%d" % int(t0 - 100),
                  "--to", "%.3f" % (t0 + 0.001))
        assert json.loads(p.stdout)[0]["id"] == only_first[0]["id"]

    # -- retention
    def ctl_json(self, v, *args):
        return json.loads(v.ctl(*(list(args) + ["--json"])).stdout)

    @staticmethod
    def ctl_json_or_none(v, *args):
        """For polling: None while vigilctl fails (e.g. no index yet)."""
        p = v.ctl(*(list(args) + ["--json"]), check=False)
        return json.loads(p.stdout) if p.returncode == 0 else None

    def test_sweep_dry_run_and_holds(self):
        v = self.main_vigil()
        wait_for("segments", lambda: len(v.segments("h264")) >= 3, 30)
        now = time.time()
        all_ids = set()
        for m in RECORDED + ["flaky", "h264-udp"]:
            all_ids |= {s["id"] for s in v.segments(m)}
        plan = self.ctl_json(v, "sweep", "--dry-run", "--as-of", "%d" % (now + 61 * 86400))
        planned = {d["id"] for d in plan["delete"]}
        assert all_ids <= planned, "not planned: %s" % (all_ids - planned)
        assert {d["reason"] for d in plan["delete"]} == {"age"}
        assert self.ctl_json(v, "sweep", "--dry-run", "--as-of",
                             "%d" % (now + 30 * 86400))["delete"] == []
        segs = v.segments("h264")
        mid = segs[len(segs) // 2]
        # JSON times are cut to the millisecond: start 1 ms late so the hold
        # does not reach back into the previous segment's last microseconds
        hold = v.ctl("hold", "add", "--case", "C-42", "--reason", "complaint about hall",
                     "--source", "h264", "--from", "%.3f" % (parse_time(mid["start"]) + 0.001),
                     "--to", mid["end"]).stdout.strip()
        try:
            plan = self.ctl_json(v, "sweep", "--dry-run", "--as-of", "%d" % (now + 61 * 86400))
            planned = {d["id"] for d in plan["delete"]}
            assert mid["id"] not in planned, "held segment planned for deletion"
            neighbours = {s["id"] for s in segs if s["end"] <= mid["start"] or s["start"] >= mid["end"]}
            assert neighbours <= planned
            holds = self.ctl_json(v, "hold", "list")
            assert [h["case"] for h in holds] == ["C-42"] and holds[0]["sources"] == "h264"
        finally:
            released = json.loads(v.ctl("hold", "release", hold, "--reason", "case closed",
                                        "--json").stdout)
        assert released == {"id": int(hold), "released": True}, released
        plan = self.ctl_json(v, "sweep", "--dry-run", "--as-of", "%d" % (now + 61 * 86400))
        assert mid["id"] in {d["id"] for d in plan["delete"]}, "released hold still protects"
        # the other retention commands speak JSON too
        second = json.loads(v.ctl("hold", "add", "--case", "C-43", "--reason", "json check",
                                  "--source", "h264", "--from", mid["start"], "--to", mid["end"],
                                  "--json").stdout)["id"]
        assert second > int(hold)
        v.ctl("hold", "release", str(second), "--reason", "done")
        swept = json.loads(v.ctl("sweep", "--json").stdout)
        assert swept["deleted"] == 0 and swept["stop_recording"] is False, swept

    def test_hold_bad_input_exits_2(self):
        v = self.main_vigil()
        wait_for("index", lambda: v.segments("h264"), 30)
        before = v.ctl("hold", "list", "--all", "--json").stdout
        for args in (["--case", "C", "--reason", "R", "--source", "h264", "--from", "20", "--to", "10"],
                     ["--case", "C", "--reason", "R", "--source", "nope", "--from", "1", "--to", "10"],
                     ["--case", "", "--reason", "R", "--source", "h264", "--from", "1", "--to", "10"],
                     ["--case", "C", "--reason", "", "--source", "h264", "--from", "1", "--to", "10"]):
            p = v.ctl("hold", "add", *args, check=False)
            assert p.returncode == 2, (args, p.returncode, p.stderr)
        assert v.ctl("hold", "list", "--all", "--json").stdout == before

    def test_small_capacity_overwrites_oldest_and_alarms(self):
        root = os.path.join(self.tmp, "capacity")
        v = Vigil(root, [("cam", self.cam.url("h264"), "video"),
                         ("line", self.cam.url("line-pcma"), "audio")], segment_seconds=2,
                  extra="[retention]\ncapacity_bytes = 400000\nreserve_percent = 10\n"
                        "sweep_seconds = 1\n").start()
        try:
            wait_for("first destruction", lambda: self.ctl_json_or_none(v, "destruction-log"), 60)
            first = v.segments("cam")[0]["id"]
            wait_for("oldest cam segment deleted, newer ones recorded", lambda:
                     v.segments("cam") and v.segments("cam")[0]["id"] > first, 60)
            st = json.loads(v.ctl("storage", "--json").stdout)
            assert st["capacity_bytes"] == 400000
            kinds = {a["kind"] for a in st["alarms"]}
            assert "archive_below_floor" in kinds, st["alarms"]
            used = sum(s["bytes"] for s in st["sources"])
            assert used <= 400000, "media uses %d bytes of a 400000 capacity" % used
            log = json.loads(v.ctl("destruction-log", "--json").stdout)
            assert all(r["reason"] == "overwrite_below_floor" for r in log), log
            assert all(len(d["sha256"]) == 64 for r in log for d in r["deleted"])
            assert v.proc.poll() is None
        finally:
            v.stop()
        v.ctl("check", "--deep")

    def test_on_full_stop_stops_recording(self):
        root = os.path.join(self.tmp, "onfullstop")
        v = Vigil(root, [("cam", self.cam.url("h264"), "video")], segment_seconds=2,
                  extra="[retention]\ncapacity_bytes = 150000\nreserve_percent = 10\n"
                        "on_full = stop\nsweep_seconds = 1\n").start()
        try:
            wait_for("recording stopped alarm", lambda: "recording_stopped" in {
                a["kind"] for a in (self.ctl_json_or_none(v, "storage") or {"alarms": []})["alarms"]},
                60)
            wait_for("paused logged", lambda: "recording paused" in v.log_text(), 10)
            n = len(v.segments("cam"))
            assert json.loads(v.ctl("destruction-log", "--json").stdout) == [], \
                "on_full=stop deleted floor-protected data"
            # paused: no new segments appear while the alarm stands (poll a few sweeps)
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                assert len(v.segments("cam")) <= n + 1
                time.sleep(0.5)
        finally:
            v.stop()

    # -- operations
    def test_unit_file(self):
        if not shutil.which("systemd-analyze"):
            raise Skip("systemd-analyze not installed")
        unit = os.path.join(self.tmp, "vigil.service")
        with open(os.path.join(REPO, "systemd", "vigil.service")) as f:
            text = f.read()
        with open(unit, "w") as f:
            f.write(text.replace("@BINDIR@", os.path.abspath(BUILD)).replace("@DOCDIR@", REPO))
        p = subprocess.run(["systemd-analyze", "verify", unit], capture_output=True, text=True,
                           timeout=60)
        assert p.returncode == 0 and "vigil.service" not in p.stderr, p.stderr
        p = subprocess.run(["systemd-analyze", "security", "--offline=yes", unit],
                           capture_output=True, text=True, timeout=60)
        m = re.search(r"Overall exposure level for vigil.service: ([0-9.]+)", p.stdout + p.stderr)
        assert m and float(m.group(1)) <= 2.5, "exposure: %s" % (m and m.group(1))
        for key in ("Type=notify", "WatchdogSec=30", "Restart=on-failure", "User=vigil",
                    "NoNewPrivileges=yes", "ProtectSystem=strict", "ReadWritePaths=/var/lib/vigil",
                    "RequiresMountsFor=/var/lib/vigil", "StateDirectory=vigil-state",
                    "CapabilityBoundingSet=\n", "MemoryDenyWriteExecute=yes",
                    "SystemCallFilter=@system-service",
                    "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX AF_NETLINK"):
            assert key in text, key

    def test_make_install_tree(self):
        dest = os.path.join(self.tmp, "destdir")
        p = subprocess.run(["make", "-s", "-C", REPO, "install", "DESTDIR=" + dest,
                            "BUILD=" + os.path.abspath(BUILD)], capture_output=True, text=True,
                           timeout=300)
        assert p.returncode == 0, p.stderr
        expected = ["usr/local/bin/vigild", "usr/local/bin/vigilctl",
                    "lib/systemd/system/vigil.service", "usr/lib/sysusers.d/vigil.conf",
                    "usr/lib/tmpfiles.d/vigil.conf", "etc/vigil/vigil.conf",
                    "usr/local/share/vigil/ui/index.html", "usr/local/share/vigil/ui/js/app.js",
                    "usr/local/share/vigil/ui/vendor/MANIFEST"]
        for rel in expected:
            assert os.path.exists(os.path.join(dest, rel)), rel
        conf = os.path.join(dest, "etc/vigil/vigil.conf")
        assert oct(os.stat(conf).st_mode & 0o777) == "0o640"
        with open(os.path.join(dest, "lib/systemd/system/vigil.service")) as f:
            assert "ExecStart=/usr/local/bin/vigild -c /etc/vigil/vigil.conf" in f.read()
        with open(os.path.join(dest, "usr/lib/tmpfiles.d/vigil.conf")) as f:
            assert "/var/lib/vigil 0750 vigil vigil" in f.read()
        with open(conf, "a") as f:
            f.write("; edited by the admin\n")
        subprocess.run(["make", "-s", "-C", REPO, "install", "DESTDIR=" + dest,
                        "BUILD=" + os.path.abspath(BUILD)], capture_output=True, timeout=300)
        with open(conf) as f:
            assert "edited by the admin" in f.read(), "install overwrote the admin's config"
        # the example config is a valid config
        v = subprocess.run([os.path.join(BUILD, "vigilctl"), "-c", conf, "status"],
                           capture_output=True, text=True, timeout=30)
        assert "FILE" not in v.stderr and ":1:" not in v.stderr, v.stderr

    def test_notify_ready_status_and_watchdog(self):
        root = os.path.join(self.tmp, "notify")
        os.makedirs(root, exist_ok=True)
        sock_path = os.path.join(root, "notify.sock")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(sock_path)
        messages = []

        def listen():
            while True:
                try:
                    data = sock.recv(4096)
                except OSError:
                    return
                messages.append((time.monotonic(), data.decode()))
        threading.Thread(target=listen, daemon=True).start()
        v = Vigil(root, [("cam", self.cam.url("h264"), "video"),
                         ("line", self.cam.url("line-pcma"), "audio")])
        env = dict(os.environ, NOTIFY_SOCKET=sock_path, WATCHDOG_USEC="2000000",
                   VIGIL_TEST_STALL_SOURCE="cam", VIGIL_TEST_STALL_AFTER_PACKETS="150")
        v.logfile = open(v.logpath, "a")
        v.proc = subprocess.Popen([os.path.join(BUILD, "vigild"), "-c", v.conf], env=env,
                                  stdout=v.logfile, stderr=subprocess.STDOUT)
        try:
            wait_for("READY=1", lambda: any("READY=1" in m for _, m in messages), 30)
            ready = [m for _, m in messages if "READY=1" in m][0]
            assert "STATUS=recording" in ready and "sources" in ready, ready
            wait_for("watchdog pings", lambda: sum("WATCHDOG=1" in m for _, m in messages) >= 3, 20)
            stalled_at = wait_for("writer stalled", lambda: "stalled on purpose" in v.log_text()
                                  and time.monotonic(), 30, 0.02)
            # WatchdogSec/2 = 1 s: pings must stop by then (plus one 0.5 s tick)
            deadline = time.monotonic() + 4
            while time.monotonic() < deadline:
                time.sleep(0.1)
            pings = [t for t, m in messages if "WATCHDOG=1" in m]
            assert pings and pings[-1] <= stalled_at + 1.0 + 0.5 + 0.2, \
                "pinged %.2f s after the stall" % (pings[-1] - stalled_at)
            assert "withholding the watchdog" in v.log_text()
            rc, took = v.stop(timeout=10)
            assert rc == 0, rc
            assert any("STOPPING=1" in m for _, m in messages)
        finally:
            if v.proc.poll() is None:
                v.proc.kill()
            sock.close()

    def test_metrics(self):
        import urllib.request
        import urllib.error
        v = self.main_vigil()
        wait_for("segments", lambda: v.segments("h264"), 30)
        url = "http://127.0.0.1:%d/metrics" % v.http_port
        text = urllib.request.urlopen(url, timeout=10).read().decode()
        families = {}
        for line in text.splitlines():
            if line.startswith("# TYPE "):
                _, _, name, kind = line.split()
                families[name] = kind
            elif line and not line.startswith("#"):
                name = re.match(r"[a-z_]+", line).group(0)
                assert name in families, "sample before its TYPE: %s" % line
                float(line.rsplit(" ", 1)[1])
        for name in ("vigil_source_received_bytes_total", "vigil_source_received_packets_total",
                     "vigil_source_reconnects_total", "vigil_source_seconds_since_last_packet",
                     "vigil_segments_written_total", "vigil_segment_write_errors_total",
                     "vigil_disk_capacity_bytes", "vigil_disk_free_bytes",
                     "vigil_archive_depth_days", "vigil_held_bytes", "vigil_alarm",
                     "vigil_retention_sweeps_total", "vigil_retention_sweep_seconds_total",
                     "vigil_http_requests_total"):
            assert name in families, "missing family %s" % name
        for name, kind in families.items():
            assert not name.endswith("_total") or kind == "counter", name
        m = re.search(r'vigil_segments_written_total\{source="h264"\} (\d+)', text)
        assert m and int(m.group(1)) >= 1, "h264 segments not counted"
        assert 'vigil_http_requests_total{route="GET /metrics",status="200"}' in \
            urllib.request.urlopen(url, timeout=10).read().decode()

    def test_metrics_token_mode(self):
        import urllib.request
        import urllib.error
        root = os.path.join(self.tmp, "metrics-token")
        v = Vigil(root, [("cam", self.cam.url("h264"), "video")])
        with open(v.conf) as f:
            text = f.read()
        with open(v.conf, "w") as f:
            f.write(text.replace("[archive]", "metrics_access = token\n[archive]"))
        v.start()
        try:
            url = "http://127.0.0.1:%d/metrics" % v.http_port
            def status(headers=None):
                try:
                    return urllib.request.urlopen(urllib.request.Request(
                        url, headers=headers or {}), timeout=10).status
                except urllib.error.HTTPError as e:
                    return e.code
                except OSError:
                    return None
            wait_for("http up", lambda: status() == 401, 30)
            token = v.ctl("token", "add", "prometheus", "--perm", "metrics").stdout.split()[-1]
            assert status({"Authorization": "Bearer " + token}) == 200
            other = v.ctl("token", "add", "pbx", "--perm", "calls").stdout.split()[-1]
            assert status({"Authorization": "Bearer " + other}) == 403
        finally:
            v.stop()

    def test_status_command(self):
        v = self.main_vigil()
        wait_for("segments", lambda: v.segments("h264"), 30)
        st = json.loads(v.ctl("status", "--json").stdout)
        names = {s["source"]: s for s in st["sources"]}
        assert names["h264"]["state"] == "recording" and names["h264"]["bitrate_bps"] >= 0
        assert "alarms" in st and isinstance(st["alarms"], list)
        mode = os.stat(os.path.join(v.data, "vigild.sock")).st_mode & 0o777
        assert mode == 0o600, oct(mode)

    def test_sighup_reload(self):
        root = os.path.join(self.tmp, "reload")
        keep = ("keep", self.cam.url("h264"), "video")
        v = Vigil(root, [keep, ("gone", self.cam.url("line-pcma"), "audio"),
                         ("changed", self.cam.url("h265"), "video")]).start()
        try:
            for n in ("keep", "gone", "changed"):
                wait_for("%s recording" % n, lambda: len(v.segments(n)) >= 2, 30)
            new = Vigil(root, [keep, ("changed", self.cam.url("h264b"), "video"),
                               ("added", self.cam.url("line-pcmu"), "audio")])
            reload_at = time.time()
            v.proc.send_signal(signal.SIGHUP)
            wait_for("reload applied", lambda: "configuration applied" in v.log_text(), 15)
            wait_for("added records", lambda: len(v.segments("added")) >= 1, 30)
            wait_for("keep records past the reload", lambda: len([
                s for s in v.segments("keep") if parse_time(s["start"]) > reload_at + 2]) >= 1, 30)
            wait_for("changed records anew", lambda: [
                s for s in v.segments("changed") if parse_time(s["start"]) > reload_at], 30)
            keep_segs = v.segments("keep")
            for a, b in zip(keep_segs, keep_segs[1:]):
                assert a["end"] == b["start"], "gap on an untouched source: %s %s" % (a, b)
            gone = v.segments("gone")
            time.sleep(0)  # gone must stay stopped: its count is stable across a segment
            n_gone = len(gone)
            wait_for("one more keep segment", lambda: len(v.segments("keep")) > len(keep_segs), 10)
            assert len(v.segments("gone")) == n_gone, "removed source still records"
            assert parse_time(gone[-1]["end"]) >= reload_at - 3
            # an invalid config is refused and the running one kept
            with open(v.conf) as f:
                good = f.read()
            n_added = len(v.segments("added"))
            with open(v.conf, "a") as f:
                f.write("[source broken]\nurl = http://nope/\n")
            v.proc.send_signal(signal.SIGHUP)
            wait_for("reload rejected", lambda: "reload rejected" in v.log_text(), 15)
            with open(v.conf, "w") as f:  # vigilctl reads the file too
                f.write(good)
            audit = json.loads(v.ctl("audit", "list", "--json").stdout)
            reloads = [a for a in audit if a["action"] == "config.reload"]
            assert [a["result"] for a in reloads] == ["ok", "error"], reloads
            assert all(a["actor"] == "system:vigild" for a in reloads)
            wait_for("added keeps recording", lambda: len(v.segments("added")) > n_added, 15)
            assert v.proc.poll() is None
        finally:
            rc, _ = v.stop()
        assert rc == 0
        v.ctl("check", "--deep")

    # -- faults
    def test_kill9_then_recovery(self):
        root = os.path.join(self.tmp, "kill9")
        v = Vigil(root, [("cam", self.cam.url("h264"), "video"),
                         ("line", self.cam.url("line-pcma"), "audio")], segment_seconds=4).start()
        wait_for("2 segments", lambda: len(v.segments("cam")) >= 2, 30)
        # kill in the middle of a segment, after at least one fragment of it is on disk
        time.sleep(0)  # no blind wait: poll for a fragment-bearing unindexed file
        def unindexed_with_data():
            indexed = {s["path"] for s in v.segments("cam")}
            for dirpath, _, files in os.walk(os.path.join(v.data, "media", "cam")):
                for f in files:
                    rel = os.path.relpath(os.path.join(dirpath, f), v.data)
                    if rel not in indexed and os.path.getsize(os.path.join(dirpath, f)) > 20000:
                        return rel
            return None
        partial = wait_for("a half-written segment", unindexed_with_data, 20, 0.05)
        v.proc.kill()
        v.proc.wait()
        p = v.ctl("check", check=False)
        assert p.returncode == 1 and "file-without-row" in p.stdout, p.stdout
        v.start()
        wait_for("recovered row", lambda: partial in {s["path"] for s in v.segments("cam")}, 20)
        wait_for("recording resumes", lambda: len(v.segments("cam")) >= 4, 30)
        rc, _ = v.stop()
        assert rc == 0, rc
        p = v.ctl("check", "--deep")
        assert "ok" in p.stdout
        ok, err = decode_ok(os.path.join(v.data, partial))
        assert ok, err[:300]

    def test_sigterm_exits_within_5s(self):
        root = os.path.join(self.tmp, "term")
        v = Vigil(root, [("cam", self.cam.url("h264b"), "video"),
                         ("dead", "rtsp://127.0.0.1:%d/x" % free_port(), "video")]).start()
        wait_for("a segment", lambda: v.segments("cam"), 30)
        rc, took = v.stop(timeout=10)
        assert rc == 0 and took < 5, "exit %s after %.1f s" % (rc, took)
        segs = v.segments("cam")
        last = os.path.join(v.data, segs[-1]["path"])
        assert decode_ok(last)[0]
        v.ctl("check", "--deep")

    def test_unreachable_and_garbage_sources_are_isolated(self):
        garbage = GarbageServer()
        root = os.path.join(self.tmp, "isolated")
        v = Vigil(root, [("good", self.cam.url("h264"), "video"),
                         ("dead", "rtsp://127.0.0.1:%d/x" % free_port(), "video"),
                         ("junk", "rtsp://127.0.0.1:%d/x" % garbage.port, "video"),
                         ("wrong", self.cam.url("line-pcma"), "video")]).start()
        try:
            wait_for("good records", lambda: len(v.segments("good")) >= 2, 30)
            wait_for("junk was tried", lambda: garbage.connections >= 1, 20)
            assert v.segments("dead") == [] and v.segments("junk") == []
            assert v.segments("wrong") == []
            assert v.proc.poll() is None, "vigild died"
            text = v.log_text()
            assert "source=dead" in text and "source=junk" in text
            assert "kind=video but the stream has no video" in text
        finally:
            v.stop()
            garbage.close()

    def test_bad_config_refused(self):
        cases = {
            "unknown key": ("[server]\ndata_dir = /tmp/x\nfoo = 1\n", ":3:"),
            "bad source name": ("[server]\ndata_dir = /tmp/x\n[source Hall_1]\nurl = rtsp://h/\n",
                                "Hall_1"),
            "bad url": ("[server]\ndata_dir = /tmp/x\n[source a]\nurl = http://h/\n", "url"),
            "segment range": ("[archive]\nsegment_seconds = 1\n", "segment_seconds"),
        }
        for name, (text, needle) in cases.items():
            path = os.path.join(self.tmp, "bad.conf")
            with open(path, "w") as f:
                f.write(text)
            p = subprocess.run([os.path.join(BUILD, "vigild"), "-c", path], capture_output=True,
                               text=True, timeout=10)
            assert p.returncode != 0, "%s: vigild started" % name
            assert needle in p.stderr, "%s: reason missing: %s" % (name, p.stderr)

    def test_full_disk_is_survived(self):
        root = os.path.join(self.tmp, "full")
        os.makedirs(root)
        mnt = os.path.join(root, "mnt")
        os.makedirs(mnt)
        if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", mnt],
                          capture_output=True).returncode != 0:
            raise Skip("cannot mount a small tmpfs here")
        try:
            v = Vigil(root, [("cam", self.cam.url("h264"), "video")], segment_seconds=2)
            v.data = mnt
            with open(v.conf) as f:
                text = f.read().replace(os.path.join(root, "data"), mnt)
            with open(v.conf, "w") as f:
                f.write(text)
            v.start()
            wait_for("a segment", lambda: v.segments("cam"), 30)
            filler = os.path.join(mnt, "filler")
            fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
            try:
                while True:  # until the disk is full
                    os.write(fd, b"\0" * 65536)
            except OSError:
                pass
            finally:
                os.close(fd)
            wait_for("disk-full logged", lambda: "no space" in v.log_text(), 30)
            assert v.proc.poll() is None, "vigild died on a full disk"
            os.unlink(filler)
            n = len(v.segments("cam"))
            wait_for("recording resumes", lambda: len(v.segments("cam")) >= n + 2, 40)
            rc, _ = v.stop()
            assert rc == 0
            v.ctl("check", "--deep")
        finally:
            subprocess.run(["umount", "-l", mnt])


class Skip(Exception):
    pass


def run_tests(suite, names):
    """Runs suite's tests by name in this order, logging PASS/FAIL/SKIP with
    their times; returns (passed, failed, skipped). The suites' shared loop."""
    passed = failed = skipped = 0
    for name in names:
        t0 = time.monotonic()
        try:
            getattr(suite, name)()
            passed += 1
            log("PASS %s (%.1f s)" % (name, time.monotonic() - t0))
        except Skip as e:
            skipped += 1
            log("SKIP %s: %s" % (name, e))
        except Exception:
            failed += 1
            log("FAIL %s (%.1f s)\n%s%s" % (name, time.monotonic() - t0, traceback.format_exc(),
                                           camsim_state(suite)))
    return passed, failed, skipped


def camsim_state(suite):
    """For a failure report: whether the suite's camera simulator still runs
    (a recording that stopped may be the simulator's death, not vigild's)."""
    cam = getattr(suite, "cam", None)
    proc = getattr(cam, "proc", None)
    if proc is None:
        return ""
    rc = proc.poll()
    if rc is None:
        return "camera simulator: running (pid %d)\n" % proc.pid
    how = ("killed by signal %d" % -rc) if rc < 0 else ("exited with %d" % rc)
    return "camera simulator: %s; its stderr ends:\n%s\n" % (how, cam.err_tail(2000))


def suite_main(suite_cls, name):
    """The main of a suite that shares one Suite(tmp) across its tests:
    --build and -k (a substring of the tests to run), sanitizer options for
    vigild under `make asan` (GLib's and GStreamer's caches are not leaks:
    tests/lsan.supp), the tests in name order, the suite's close (a failure
    there, a crash at exit say, counts), vigild's log tail when anything
    failed, and a summary line. Returns the exit status."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("-k", default="")
    args = ap.parse_args()
    global BUILD
    BUILD = args.build
    here = os.path.dirname(os.path.abspath(__file__))
    os.environ["ASAN_OPTIONS"] = "fast_unwind_on_malloc=0:" + os.environ.get("ASAN_OPTIONS", "")
    os.environ["LSAN_OPTIONS"] = ("suppressions=%s/lsan.supp:" % here) + os.environ.get(
        "LSAN_OPTIONS", "")
    passed = failed = skipped = 0
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="vigil-%s-" % name) as tmp:
        suite = suite_cls(tmp)
        try:
            names = sorted(n for n in dir(suite_cls) if n.startswith("test_") and args.k in n)
            passed, failed, skipped = run_tests(suite, names)
        finally:
            try:
                suite.close()
            except Exception as e:
                failed += 1
                log("FAIL close: %s" % e)
            v = getattr(suite, "v", None)
            if failed and v is not None and hasattr(v, "log_text"):
                log("--- vigild log tail ---\n" + v.log_text()[-3000:])
    log("integration_%s: %d passed, %d failed, %d skipped (%.0f s)" %
        (name, passed, failed, skipped, time.monotonic() - t0))
    return 1 if failed else 0


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class GarbageServer:
    """Accepts TCP connections and answers anything with noise."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.closed = False
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while not self.closed:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            try:
                conn.settimeout(2)
                conn.recv(4096)
                conn.sendall(os.urandom(3000) + b"RTSP/1.0 200 OK\r\nCSeq: x\r\n\r\n" +
                             os.urandom(3000))
            except OSError:
                pass
            conn.close()

    def close(self):
        self.closed = True
        self.sock.close()


def main():
    global BUILD
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("-k", default="", help="run tests whose name contains this")
    args = ap.parse_args()
    BUILD = args.build
    passed = failed = skipped = 0
    with tempfile.TemporaryDirectory(prefix="vigil-it-") as tmp:
        suite = Suite(tmp)
        try:
            names = [n for n in dir(Suite) if n.startswith("test_") and args.k in n]
            # the order matters only for speed: the shared vigild warms up first
            for name in sorted(names, key=lambda n: (n != "test_records_every_codec", n)):
                t0 = time.monotonic()
                try:
                    getattr(suite, name)()
                    passed += 1
                    log("PASS %s (%.1f s)" % (name, time.monotonic() - t0))
                except Skip as e:
                    skipped += 1
                    log("SKIP %s: %s" % (name, e))
                except Exception:
                    failed += 1
                    log("FAIL %s (%.1f s)\n%s" % (name, time.monotonic() - t0,
                                                  traceback.format_exc()))
        finally:
            suite.close()
            if failed and suite.main:
                log("--- main vigild log tail ---\n" + suite.main.log_text()[-3000:])
            if failed:
                log("--- camera simulator stderr tail ---\n" + suite.cam.err_tail())
    log("integration: %d passed, %d failed, %d skipped" % (passed, failed, skipped))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
