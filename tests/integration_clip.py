#!/usr/bin/env python3
"""Integration tests of GET /api/v1/sources/{name}/clip.{mp4,mov,mkv}: one
camera simulator, one vigild recording /h264, /h264b (B-frames), /h265,
/cam-g711, /flaky and the call line /line-pcma in 2 s segments; clips checked
with ffprobe/ffmpeg as independent readers, byte ranges against the whole
download, a gap kept on the wall clock, format and codec changes, bad input,
the audit row, and a segment deleted or cut while its clip is being sent.

Reuses the helpers of tests/integration.py and integration_web.py. Ends with
"N passed, N failed".
"""
import hashlib
import http.client
import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.parse
import zipfile

import integration
from integration import Camsim, decode_ok, ffprobe, free_port, log, parse_time, wait_for
from integration_web import PASSWORD, Client, WebVigil, wait_http

SOURCES = ["h264", "h264b", "h265", "cam-g711", "flaky"]
FRAME = 0.04  # camsim's video is 25 fps


def top_boxes(data):
    """(type, offset, size) of the top-level boxes."""
    out, off = [], 0
    while off + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[off:off + 8])
        if size == 1:
            size = struct.unpack(">Q", data[off + 8:off + 16])[0]
        elif size == 0:
            size = len(data) - off
        out.append((kind.decode("latin-1"), off, size))
        if size < 8:
            break
        off += size
    return out


def iso(t):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(int(t))) + \
        (".%03dZ" % round((t - int(t)) * 1000))


class ClipVigil(integration.Faultfs, WebVigil):
    """A WebVigil whose file-system calls go through the faultfs shim, so a
    test can hold the clip reader at a file's open (tests/tools/faultfs.c)."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.faultfs_init()

    def start(self):
        return super().start(env=self.faultfs_env())


class Suite:
    def __init__(self, tmp):
        self.tmp = tmp
        self.cam = Camsim()
        port = free_port()
        self.port = port
        sources = [(m, self.cam.url(m), "video") for m in SOURCES]
        sources.append(("line-pcma", self.cam.url("line-pcma"), "audio"))
        self.v = ClipVigil(os.path.join(tmp, "v"), sources, "http_listen = 127.0.0.1:%d\n" % port,
                          extra="[playback]\nclip_max_seconds = 600\n")
        self.v.add_user("admin", "admin")
        self.v.add_user("guard", "security", sources="h265")
        self.v.start()
        wait_http(port)
        self.c = Client(port)
        self.c.login("admin")
        self.guard = Client(port)
        self.guard.login("guard")

    def close(self):
        self.v.stop()
        self.cam.stop()

    # ---- helpers

    def get(self, path, headers=None, client=None):
        c = client or self.c
        conn = c.conn()
        h = dict(headers or {})
        h["Cookie"] = c.cookie
        conn.request("GET", path, headers=h)
        r = conn.getresponse()
        data = r.read()
        conn.close()
        return r.status, data, r

    def segs(self, source, n):
        """The source's first n segments once it has that many (JSON rows)."""
        def enough():
            s = self.v.segments(source)
            return s if len(s) >= n else None
        return wait_for("%d segments of %s" % (n, source), enough, 60)

    def span(self, source, n):
        s = self.segs(source, n)
        return parse_time(s[0]["start"]), parse_time(s[n - 1]["end"]), s

    def clip(self, source, ext, frm, to, headers=None, client=None):
        q = urllib.parse.urlencode({"from": iso(frm), "to": iso(to)})
        return self.get("/api/v1/sources/%s/clip.%s?%s" % (source, ext, q), headers, client)

    def save(self, name, data):
        path = os.path.join(self.tmp, name)
        with open(path, "wb") as f:
            f.write(data)
        return path

    def probe_duration(self, path):
        return float(ffprobe(path)["format"]["duration"])

    def first_video(self, path):
        """(first packet's flags, first shown frame's time) of the video."""
        p = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_packets",
                            "-read_intervals", "%+#1", "-show_entries", "packet=flags", "-of",
                            "json", path], capture_output=True, text=True, timeout=60)
        flags = json.loads(p.stdout)["packets"][0]["flags"]
        p = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_frames",
                            "-read_intervals", "%+#60", "-show_entries",
                            "frame=best_effort_timestamp_time", "-of", "json", path],
                           capture_output=True, text=True, timeout=60)
        t = float(json.loads(p.stdout)["frames"][0]["best_effort_timestamp_time"])
        return flags, t

    def check_clip(self, source, ext, frm, to, expect_codecs):
        status, data, r = self.clip(source, ext, frm, to)
        assert status == 200, (status, data[:300])
        assert int(r.getheader("Content-Length")) == len(data), r.getheader("Content-Length")
        disp = r.getheader("Content-Disposition")
        # one style for every clip (README "Clips"): SOURCE_FROM_TO.EXT, compact UTC
        assert re.search(r'filename="%s_\d{8}T\d{6}Z_\d{8}T\d{6}Z\.%s"' % (source, ext), disp), disp
        assert r.getheader("Accept-Ranges") == "bytes" and r.getheader("ETag")
        path = self.save("%s-%d.%s" % (source, int(frm * 1000), ext), data)
        codecs = sorted(s["codec_name"] for s in ffprobe(path)["streams"])
        assert codecs == sorted(expect_codecs), codecs
        ok, err = decode_ok(path)
        assert ok, err
        return data, path

    # ---- tests

    def test_mp4_h264_starts_at_from_on_a_keyframe(self):
        t0, t1, _ = self.span("h264", 4)
        frm, to = t0 + 1.3, t0 + 5.3  # across two segment boundaries
        data, path = self.check_clip("h264", "mp4", frm, to, ["h264"])
        kinds = [b[0] for b in top_boxes(data)]
        assert kinds == ["ftyp", "moov", "mdat"], kinds
        assert sum(b[2] for b in top_boxes(data)) == len(data)
        d = self.probe_duration(path)
        assert abs(d - 4.0) <= FRAME + 0.001, d
        flags, first = self.first_video(path)
        assert flags.startswith("K"), flags
        assert abs(first) <= FRAME, first

    def test_range_slices_and_resume(self):
        t0, _, _ = self.span("h264", 4)
        frm, to = t0 + 0.5, t0 + 6.5
        status, whole, r = self.clip("h264", "mp4", frm, to)
        assert status == 200
        etag, size = r.getheader("ETag"), len(whole)
        for a, b in [(0, 0), (0, 99), (100, 5000), (size // 3, size // 2), (size - 10, size - 1),
                     (size - 1, size - 1)]:
            status, part, r = self.clip("h264", "mp4", frm, to,
                                        {"Range": "bytes=%d-%d" % (a, b)})
            assert status == 206, (a, b, status)
            assert part == whole[a:b + 1], (a, b)
            assert r.getheader("Content-Range") == "bytes %d-%d/%d" % (a, b, size)
        # suffix range
        status, part, _ = self.clip("h264", "mp4", frm, to, {"Range": "bytes=-700"})
        assert status == 206 and part == whole[-700:]
        # a download cut at an arbitrary byte resumes with If-Range
        cut = size * 2 // 5 + 7
        status, rest, _ = self.clip("h264", "mp4", frm, to,
                                    {"Range": "bytes=%d-" % cut, "If-Range": etag})
        assert status == 206
        assert hashlib.sha256(whole[:cut] + rest).hexdigest() == hashlib.sha256(whole).hexdigest()
        # the same request gives the same bytes (and ETag)
        status, again, r = self.clip("h264", "mp4", frm, to)
        assert again == whole and r.getheader("ETag") == etag
        # beyond the end
        status, body, r = self.clip("h264", "mp4", frm, to, {"Range": "bytes=%d-" % size})
        assert status == 416, status
        assert r.getheader("Content-Range") == "bytes */%d" % size

    def test_b_frames_have_ctts_and_decode(self):
        t0, _, _ = self.span("h264b", 4)
        data, path = self.check_clip("h264b", "mp4", t0 + 0.7, t0 + 4.7, ["h264"])
        moov = next(b for b in top_boxes(data) if b[0] == "moov")
        assert b"ctts" in data[moov[1]:moov[1] + moov[2]], "no ctts for B-frames"
        d = self.probe_duration(path)
        assert abs(d - 4.0) <= FRAME + 0.001, d
        flags, first = self.first_video(path)
        assert flags.startswith("K") and abs(first) <= FRAME, (flags, first)

    def test_h265_clip_plays(self):
        t0, _, _ = self.span("h265", 3)
        _, path = self.check_clip("h265", "mp4", t0 + 0.2, t0 + 3.2, ["hevc"])
        assert abs(self.probe_duration(path) - 3.0) <= FRAME + 0.001

    def test_g711_camera_as_mov_keeps_the_stored_audio(self):
        # past the first segments: a connection's audio may start later
        _, _, segs = self.span("cam-g711", 7)
        segs = segs[3:]
        t0 = parse_time(segs[0]["start"])
        frm, to = t0 + 1.0, t0 + 5.0
        status, body, _ = self.clip("cam-g711", "mp4", frm, to)
        assert status == 415 and "clip.mov" in body.decode(), (status, body)
        data, path = self.check_clip("cam-g711", "mov", frm, to, ["h264", "pcm_alaw"])
        assert [b[0] for b in top_boxes(data)][:3] == ["ftyp", "moov", "mdat"]
        assert data[8:12] == b"qt  "
        # the clip's A-law bytes are a run of the stored ones, about the
        # clip's length (8000 bytes a second), none changed
        def alaw(p):
            return subprocess.run(["ffmpeg", "-v", "error", "-i", p, "-map", "0:a", "-c", "copy",
                                   "-f", "alaw", "-"], capture_output=True, timeout=60,
                                  check=True).stdout
        stored = b"".join(alaw(os.path.join(self.v.data, s["path"])) for s in segs[:4])
        got = alaw(path)
        # from the keyframe before from (at most camsim's 1 s GOP earlier) to to
        assert 8000 * 3.9 <= len(got) <= 8000 * 5.1, len(got)
        assert got in stored, "clip audio is not the stored audio"

    def test_call_line_as_mov(self):
        """An audio-only G.711 line: .mov, every sample a sync point."""
        t0, _, _ = self.span("line-pcma", 3)
        frm, to = t0 + 0.77, t0 + 3.77
        status, body, _ = self.clip("line-pcma", "mp4", frm, to)
        assert status == 415, status
        _, path = self.check_clip("line-pcma", "mov", frm, to, ["pcm_alaw"])
        assert abs(self.probe_duration(path) - 3.0) <= 0.03, self.probe_duration(path)
        # a security account has no calls permission: the line does not exist for it
        assert self.clip("line-pcma", "mov", frm, to, client=self.guard)[0] == 404

    def test_mkv_plays_with_exact_length(self):
        t0, _, _ = self.span("h264", 4)
        data, path = self.check_clip("h264", "mkv", t0 + 0.9, t0 + 4.9, ["h264"])
        assert data[:4] == b"\x1a\x45\xdf\xa3", data[:4]
        # no edit list in Matroska: it starts at the keyframe before from
        # (camsim: one a second)
        d = self.probe_duration(path)
        assert 4.0 - FRAME <= d <= 5.0 + FRAME, d
        status, part, _ = self.clip("h264", "mkv", t0 + 0.9, t0 + 4.9,
                                    {"Range": "bytes=1000-2999"})
        assert status == 206 and part == data[1000:3000]

    def test_gap_keeps_wall_times(self):
        self.segs("flaky", 2)
        down_at = self.cam.signal(signal.SIGUSR1, "FLAKY down")
        wait_for("flaky segment finalized", lambda: any(
            parse_time(s["end"]) >= down_at - 1.5 for s in self.v.segments("flaky")), 15)
        wait_for("3 s down", lambda: time.time() - down_at >= 3, 4)
        self.cam.signal(signal.SIGUSR2, "FLAKY up")
        def after_gap():
            s = self.v.segments("flaky")
            for a, b in zip(s, s[1:]):
                if parse_time(b["start"]) - parse_time(a["end"]) > 1.0:
                    return a, b
            return None
        try:
            a, b = wait_for("a gap in flaky's recording", after_gap, 60)
        except AssertionError:
            raise AssertionError("flaky's segments: %s" % [(x["start"], x["end"]) for x in
                                                          self.v.segments("flaky")])
        a_end, b_start = parse_time(a["end"]), parse_time(b["start"])
        frm, to = a_end - 1.0, min(b_start + 0.8, parse_time(b["end"]))
        _, path = self.check_clip("flaky", "mp4", frm, to, ["h264"])
        d = self.probe_duration(path)
        assert abs(d - (to - frm)) <= FRAME + 0.001, (d, to - frm)
        # the first frame after the gap is shown at its wall time
        p = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_frames",
                            "-show_entries", "frame=best_effort_timestamp_time", "-of", "json",
                            path], capture_output=True, text=True, timeout=60)
        times = [float(f["best_effort_timestamp_time"]) for f in json.loads(p.stdout)["frames"]]
        jumps = [(x, y) for x, y in zip(times, times[1:]) if y - x > 0.5]
        assert len(jumps) == 1, jumps
        assert abs(jumps[0][1] - (b_start - frm)) <= FRAME + 0.001, (jumps, b_start - frm)

    def test_bad_input(self):
        t0, t1, _ = self.span("h264", 3)
        base = "/api/v1/sources/h264/clip.mp4?"
        def q(**kw):
            return self.get(base + urllib.parse.urlencode(kw))
        status, body, _ = self.clip("h264", "mp4", t0 + 3, t0 + 1)
        assert status == 400, status
        status, body, _ = self.clip("h264", "mp4", t0 + 1, t0 + 1)
        assert status == 400, status
        assert q(**{"from": iso(t0)})[0] == 400
        assert q(**{"from": "yesterday", "to": iso(t0)})[0] == 400
        assert q(**{"from": iso(t0), "to": iso(t1), "x": "1"})[0] == 400
        status, body, _ = self.clip("h264", "mp4", t0 - 86400 * 30, t0 - 86400 * 30 + 60)
        assert status == 404, status
        status, body, _ = self.clip("h264", "mp4", t0, t0 + 601)
        assert status == 400 and "clip_max_seconds" in body.decode(), (status, body)
        assert self.get("/api/v1/sources/h264/clip.avi?from=%s&to=%s" % (iso(t0), iso(t1)))[0] == 404
        assert self.clip("nosuch", "mp4", t0, t1)[0] == 404
        # a source the account may not see does not exist for it
        status, body, _ = self.clip("h264", "mp4", t0, t1, client=self.guard)
        assert status == 404, status
        t2, _, _ = self.span("h265", 2)
        status, _, _ = self.clip("h265", "mp4", t2, t2 + 2, client=self.guard)
        assert status == 200, status
        # no credentials
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        conn.request("GET", "/api/v1/sources/h264/clip.mp4?from=%s&to=%s" % (iso(t0), iso(t1)))
        assert conn.getresponse().status == 401
        conn.close()

    def test_one_audit_row_per_clip(self):
        t0, _, _ = self.span("h265", 3)
        frm, to = t0 + 0.25, t0 + 2.25
        def rows():
            status, body, _ = self.c.request("GET", "/api/v1/audit?action=clip.read&limit=500")
            assert status == 200, body
            return [x for x in body["rows"] if x.get("object") == "source:h265" and
                    abs(parse_time(x["from"]) - frm) < 0.002]
        n0 = len(rows())
        assert self.clip("h265", "mp4", frm, to)[0] == 200
        got = rows()
        assert len(got) == n0 + 1, got
        assert abs(parse_time(got[0]["to"]) - to) < 0.002 and got[0]["result"] == "ok", got[0]
        # Range continuations of the same clip are counted, not a row each
        # (their aggregated row is checked once vigild has stopped)
        for a in (1000, 2000, 3000):
            assert self.clip("h265", "mp4", frm, to, {"Range": "bytes=%d-" % a})[0] == 206
        assert len(rows()) == n0 + 1, rows()
        self.aggregated = (frm, to)
        # a download that starts with a Range past byte 0 (no opening on
        # record) gets its own row, with its source, at once
        frm2 = frm + 0.5
        n1 = len([x for x in self.c.request("GET", "/api/v1/audit?action=clip.read&limit=500")[1]
                  ["rows"] if x.get("object") == "source:h265" and
                  abs(parse_time(x["from"]) - frm2) < 0.002])
        assert self.clip("h265", "mp4", frm2, to, {"Range": "bytes=500-"})[0] == 206
        got = [x for x in self.c.request("GET", "/api/v1/audit?action=clip.read&limit=500")[1]
               ["rows"] if x.get("object") == "source:h265" and
               abs(parse_time(x["from"]) - frm2) < 0.002]
        assert len(got) == n1 + 1 and got[0]["result"] == "ok", got

    def switch_flaky(self, mount):
        """Points the flaky source at another mount (SIGHUP) and returns
        (last segment before, first whole segment after)."""
        with open(self.v.conf) as f:
            text = f.read()
        # the url line of [source flaky] only (another source may have the
        # same url once flaky points at its mount)
        head, sep, rest = text.partition("[source flaky]\n")
        assert sep, text
        line = next(l for l in rest.splitlines() if l.startswith("url = "))
        self.flaky_url = self.cam.url(mount)
        with open(self.v.conf, "w") as f:
            f.write(head + sep + rest.replace(line, "url = " + self.flaky_url, 1))
        n = self.v.log_text().count("configuration applied")
        at = time.time()
        self.v.proc.send_signal(signal.SIGHUP)
        wait_for("reload applied", lambda: self.v.log_text().count("configuration applied") > n,
                 15)
        # The old connection may still start a segment between `at` and the
        # reload, so the switch is found where the stored sample entry
        # changes, not by time alone.
        def pair():
            s = self.v.segments("flaky")
            for i in range(1, len(s) - 1):  # the first new segment must be followed
                if parse_time(s[i]["start"]) > at and \
                        self.sample_entry(s[i]) != self.sample_entry(s[i - 1]):
                    return s[i - 1], s[i]
            return None
        return wait_for("flaky recording %s" % mount, pair, 40)

    def sample_entry(self, seg):
        """The stsd box of a stored segment's init part."""
        with open(os.path.join(self.v.data, seg["path"]), "rb") as f:
            head = f.read(1 << 16)
        i = head.index(b"stsd")
        return head[i - 4:i - 4 + struct.unpack(">I", head[i - 4:i])[0]]

    def test_zy_format_and_codec_change(self):
        """After the gap test (it uses flaky too)."""
        self.flaky_url = self.cam.url("flaky")
        # H.264 to H.264 with other parameters: a second sample entry
        a, b = self.switch_flaky("h264b")
        frm, to = parse_time(a["end"]) - 1.0, parse_time(b["end"])
        data, path = self.check_clip("flaky", "mp4", frm, to, ["h264"])
        i = data.index(b"stsd")
        assert struct.unpack(">I", data[i + 8:i + 12])[0] == 2, "one sample entry"
        assert abs(self.probe_duration(path) - (to - frm)) <= FRAME + 0.001
        # H.264 to H.265: 409 naming the time of the change
        a, b = self.switch_flaky("h265")
        status, body, _ = self.clip("flaky", "mp4", parse_time(a["end"]) - 1.0,
                                    parse_time(b["end"]))
        assert status == 409, (status, body)
        msg = json.loads(body)["error"]["message"]
        assert b["start"] in msg, (msg, b["start"])
        # an evidence bundle over the change ends its file there and says so:
        # its manifest names only the segments the file was made from
        out = os.path.join(self.tmp, "across-the-change.zip")
        p = self.v.ctl("export", "--bundle", "--case", "CUT-1", "--reason", "codec change",
                       "flaky", "--from", iso(parse_time(a["end"]) - 1.0), "--to", b["end"],
                       "-o", out, check=False)
        assert p.returncode == 0, p.stdout + p.stderr
        src = json.loads(zipfile.ZipFile(out).read("manifest.json"))["sources"][0]
        assert src["cut"]["at"] == b["start"], (src.get("cut"), b["start"])
        assert [g["id"] for g in src["segments"]][-1] == a["id"], (src["segments"], a)
        assert all(g["start"] < b["start"] for g in src["segments"]), src["segments"]
        # each side alone is fine
        assert self.clip("flaky", "mp4", parse_time(b["start"]), parse_time(b["end"]))[0] == 200

    def cut_while_sending(self, frm, to, seg, damage):
        """Requests a clip whose reader is held 2 s at the open of seg's file
        (the plan opens it first), damages the file while it is held, and
        returns (bytes received, Content-Length)."""
        rel = seg["path"]
        self.v.set_faults("open %s delay=2000\n" % rel)
        fired = lambda: sum(1 for l in self.v.fired_lines() if rel in l)
        n0 = fired()
        q = urllib.parse.urlencode({"from": iso(frm), "to": iso(to)})
        s = socket.create_connection(("127.0.0.1", self.port), timeout=60)
        s.sendall(("GET /api/v1/sources/h264/clip.mp4?%s HTTP/1.1\r\nHost: x\r\nCookie: %s\r\n"
                   "Connection: close\r\n\r\n" % (q, self.c.cookie)).encode())
        # the plan's open, then the reader's: the file is damaged while the
        # reader waits to open it
        wait_for("the reader at %s" % rel, lambda: fired() >= n0 + 2, 30, interval=0.02)
        damage(os.path.join(self.v.data, rel))
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        s.close()
        self.v.set_faults("")
        head, _, body = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), head
        length = int([l for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")]
                     [0].split(b":")[1])
        return len(body), length

    def test_zz_segment_deleted_or_cut_while_sending(self):
        """Runs last: it damages recordings of /h264 under vigild."""
        _, _, segs = self.span("h264", 8)
        got, length = self.cut_while_sending(parse_time(segs[0]["start"]) + 0.1,
                                             parse_time(segs[3]["end"]) - 0.1, segs[2], os.unlink)
        assert got < length, (got, length)
        wait_for("the cut logged", lambda: "is gone since the clip was planned" in
                 self.v.log_text(), 10)
        def halve(path):
            os.truncate(path, os.path.getsize(path) // 2)
        got, length = self.cut_while_sending(parse_time(segs[4]["start"]) + 0.1,
                                             parse_time(segs[7]["end"]) - 0.1, segs[6], halve)
        assert got < length, (got, length)
        wait_for("the short file logged", lambda: "is shorter than planned" in
                 self.v.log_text(), 10)
        # vigild is fine, still answers and records
        assert self.get("/api/v1/me")[0] == 200
        n = len(self.v.segments("h264"))
        wait_for("h264 still recording", lambda: len(self.v.segments("h264")) > n, 20)

    def test_zzz_vigild_exits_clean(self):
        """Last: vigild stops cleanly; under `make asan` no sanitizer report."""
        rc, _ = self.v.stop(timeout=20 * integration.TIMEOUT_SCALE)
        text = self.v.log_text()
        assert rc == 0, rc
        for bad in ("Sanitizer", "runtime error:"):
            assert bad not in text, text[text.index(bad) - 200:text.index(bad) + 3000]
        # the continuations' row, written when the minute closed or at shutdown
        if getattr(self, "aggregated", None):
            frm, to = self.aggregated
            rows = [r for r in json.loads(self.v.ctl("audit", "list", "--json").stdout)
                    if r["action"] == "clip.read" and r["object"] == "source:h265" and
                    r["detail"].startswith("count=")]
            assert any(int(r["detail"].split()[0][6:]) >= 3 and
                       "%d-%d" % (round(frm * 1e6), round(to * 1e6)) in r["detail"]
                       for r in rows), rows


def main():
    return integration.suite_main(Suite, "clip")


if __name__ == "__main__":
    sys.exit(main())
