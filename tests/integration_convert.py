#!/usr/bin/env python3
"""Integration tests of the converted HLS media against one real vigild
recording the camera simulator (2 s segments): a G.711 camera's playlist
names converted init parts and fragments (FLAC inside the fMP4, the H.264
samples copied byte for byte, audio and video starting together within
40 ms), Range and conditional answers over converted bytes, bad parameters,
and the optional H.265 -> H.264 transcode ([playback] transcode_hevc) with
its transcode_max limit (503 + Retry-After while a transcode is held by a
stalled file open, injected with the faultfs shim).

Reuses tests/integration.py and tests/integration_web.py. Ends with
"N passed, N failed".
"""
import hashlib
import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.parse

import integration
from integration import Camsim, log, wait_for
from integration_web import Client, WebVigil, free_port, wait_http

SYNC_S = 0.040  # the bound on audio/video start difference


def boxes(data):
    """Top-level boxes: [(type, offset, size)]."""
    out, off = [], 0
    while off + 8 <= len(data):
        size = int.from_bytes(data[off:off + 4], "big")
        kind = data[off + 4:off + 8].decode("latin-1")
        if size == 0:
            size = len(data) - off
        assert size >= 8, (kind, off, size)
        out.append((kind, off, size))
        off += size
    assert off == len(data), "boxes do not add up"
    return out


def sample_entry(init, kind):
    """The bytes of the first sample entry box of this type in an init part."""
    at = init.find(kind.encode())
    assert at >= 4, kind
    size = int.from_bytes(init[at - 4:at], "big")
    return init[at - 4:at - 4 + size]


def iso(us):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(us // 1000000)) + \
        ".%06dZ" % (us % 1000000)


def parse_iso(text):
    import calendar
    base, frac = text.rstrip("Z").split(".")
    return calendar.timegm(time.strptime(base, "%Y-%m-%dT%H:%M:%S")) * 1000000 + \
        int((frac + "000000")[:6])


def probe_packets(path):
    """ffprobe's packets of a file: [{codec_type, pts_time, dts_time, duration_time,
    data_hash}] and its streams."""
    p = subprocess.run(["ffprobe", "-v", "error", "-show_streams", "-show_packets",
                        "-show_data_hash", "sha256", "-of", "json", path],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr[-2000:]
    d = json.loads(p.stdout)
    types = {s["index"]: s["codec_type"] for s in d["streams"]}
    for pk in d.get("packets", []):
        pk["codec_type"] = types[pk["stream_index"]]
    return d["streams"], d.get("packets", [])


def children(data, start, end):
    out, off = {}, start
    while off + 8 <= end:
        size = int.from_bytes(data[off:off + 4], "big")
        if size < 8:
            break
        out.setdefault(data[off + 4:off + 8].decode("latin-1"), []).append((off, size))
        off += size
    return out


def track_times(init, frag):
    """From the boxes themselves: {handler: (start, end)} in seconds of each
    track of one fragment (tfdt, and the sample durations of trun, or the
    tfhd / trex default), the init part giving timescales and handlers."""
    moov = children(init, 0, len(init))["moov"][0]
    mv = children(init, moov[0] + 8, moov[0] + moov[1])
    tracks, trex = {}, {}
    for off, size in mv.get("trak", []):
        t = children(init, off + 8, off + size)
        tkhd = t["tkhd"][0][0]
        ver = init[tkhd + 8]
        tid = int.from_bytes(init[tkhd + (28 if ver else 20):tkhd + (32 if ver else 24)], "big")
        md = t["mdia"][0]
        m = children(init, md[0] + 8, md[0] + md[1])
        mdhd = m["mdhd"][0][0]
        ver = init[mdhd + 8]
        ts = int.from_bytes(init[mdhd + (28 if ver else 20):mdhd + (32 if ver else 24)], "big")
        hdlr = m["hdlr"][0][0]
        tracks[tid] = (init[hdlr + 16:hdlr + 20].decode("latin-1"), ts)
    for off, size in children(init, mv["mvex"][0][0] + 8, sum(mv["mvex"][0])).get("trex", []):
        tid = int.from_bytes(init[off + 12:off + 16], "big")
        trex[tid] = int.from_bytes(init[off + 20:off + 24], "big")
    out = {}
    moof = children(frag, 0, len(frag))["moof"][0]
    for off, size in children(frag, moof[0] + 8, sum(moof)).get("traf", []):
        t = children(frag, off + 8, off + size)
        tf = t["tfhd"][0][0]
        flags = int.from_bytes(frag[tf + 9:tf + 12], "big")
        tid = int.from_bytes(frag[tf + 12:tf + 16], "big")
        p = tf + 16 + (8 if flags & 1 else 0) + (4 if flags & 2 else 0)
        default = int.from_bytes(frag[p:p + 4], "big") if flags & 8 else trex.get(tid, 0)
        td = t["tfdt"][0][0]
        base = int.from_bytes(frag[td + 12:td + (20 if frag[td + 8] else 16)], "big")
        total = 0
        for tr, _ in t.get("trun", []):
            tflags = int.from_bytes(frag[tr + 9:tr + 12], "big")
            count = int.from_bytes(frag[tr + 12:tr + 16], "big")
            q = tr + 16 + (4 if tflags & 1 else 0) + (4 if tflags & 4 else 0)
            per = sum(4 for bit in (0x100, 0x200, 0x400, 0x800) if tflags & bit)
            for i in range(count):
                total += int.from_bytes(frag[q:q + 4], "big") if tflags & 0x100 else default
                q += per
        kind, ts = tracks[tid]
        out[kind] = (base / ts, (base + total) / ts)
    return out


def last_end(packets, kind):
    return max(float(p["pts_time"]) + float(p.get("duration_time", 0)) for p in packets
               if p["codec_type"] == kind)


def first_time(packets, kind):
    return min(float(p["pts_time"]) for p in packets if p["codec_type"] == kind)


class ConvertVigil(integration.Faultfs, WebVigil):
    """A WebVigil whose file-system calls go through the faultfs shim (a
    stalled open holds a transcode slot for as long as the test wants)."""

    def __init__(self, root, sources, server_keys, extra):
        super().__init__(root, sources, server_keys, extra=extra)
        self.faultfs_init()

    def start(self):
        return super().start(env=self.faultfs_env())


class Suite:
    def __init__(self, tmp):
        self.tmp = tmp
        self.cam = Camsim()
        root = os.path.join(tmp, "v")
        self.port = free_port()
        c = self.cam
        self.v = ConvertVigil(root, [("g711", c.url("cam-g711"), "video"),
                                     ("hevc", c.url("h265"), "video"),
                                     ("cam", c.url("h264"), "video")],
                              "http_listen = 127.0.0.1:%d\n" % self.port,
                              "[playback]\ntranscode_hevc = yes\ntranscode_max = 1\n")
        self.v.add_user("admin", "admin")
        self.v.start()
        wait_http(self.port)
        self.admin = Client(self.port)
        self.admin.login("admin")
        self.media = 0

    def close(self):
        self.v.stop()
        self.cam.stop()

    def segs(self, source, n):
        def enough():
            st, body, _ = self.admin.request("GET", "/api/v1/sources/%s/segments" % source)
            return st == 200 and len(body["segments"]) >= n and body["segments"]
        return wait_for("%d segments of %s" % (n, source), enough, 60)

    def get(self, path, headers=None):
        c = self.admin.conn()
        h = {"Cookie": self.admin.cookie}
        h.update(headers or {})
        c.request("GET", path, headers=h)
        r = c.getresponse()
        data = r.read()
        c.close()
        return r.status, data, r

    def playlist(self, source, segs, query=""):
        path = "/api/v1/sources/%s/playlist.m3u8?from=%s&to=%s%s" % (
            source, urllib.parse.quote(segs[0]["start"]), urllib.parse.quote(segs[-1]["end"]),
            query)
        st, data, _ = self.get(path)
        assert st == 200, (st, data)
        text = data.decode()
        maps = re.findall(r'#EXT-X-MAP:URI="([^"]+)"(,BYTERANGE="[^"]*")?', text)
        media = re.findall(r"^(media/[^\n]+)$", text, re.M)
        durs = [float(x) for x in re.findall(r"#EXTINF:([0-9.]+),", text)]
        return text, maps, media, durs

    def write(self, name, *parts):
        path = os.path.join(self.tmp, name)
        with open(path, "wb") as f:
            for p in parts:
                f.write(p)
        return path

    def media_get(self, source, uri):
        st, data, r = self.get("/api/v1/sources/%s/%s" % (source, uri))
        assert st == 200, (uri, st, data[:300])
        self.media += 1
        return data, r

    # ---- tests (run in name order) ----

    def test_a_g711_playlist_names_converted_media(self):
        segs = self.segs("g711", 3)[:3]
        text, maps, media, _ = self.playlist("g711", segs)
        assert maps and all(m[0].endswith("?audio=flac") and not m[1] for m in maps), maps
        assert "#EXT-X-BYTERANGE" not in text, text[:500]
        assert media and all(re.match(r"media/\d+\?audio=flac&frag=\d+$", m) for m in media), media
        # the video-only H.264 camera is untouched: byte ranges of the stored files
        text, maps, media, _ = self.playlist("cam", self.segs("cam", 2)[:2])
        assert "#EXT-X-BYTERANGE" in text and all(m[1] for m in maps), text[:400]

    def test_b_init_has_flac_and_the_stored_video_entry(self):
        seg = self.segs("g711", 2)[0]
        init, r = self.media_get("g711", "media/%d?audio=flac" % seg["id"])
        assert r.getheader("Content-Type") == "video/mp4"
        assert [b[0] for b in boxes(init)] == ["ftyp", "moov"], boxes(init)
        assert b"fLaC" in init and b"dfLa" in init, "no FLAC sample entry"
        assert b"alaw" not in init and b"ulaw" not in init, "G.711 left in the init part"
        stored, _ = self.media_get("g711", "media/%d" % seg["id"])
        st = boxes(stored)
        stored_init = stored[:st[1][1] + st[1][2]]
        assert sample_entry(init, "avc1") == sample_entry(stored_init, "avc1"), \
            "the video sample entry changed"

    def test_c_fragments_copy_video_and_carry_flac_in_sync(self):
        seg = self.segs("g711", 2)[0]
        sid = seg["id"]
        stored, _ = self.media_get("g711", "media/%d" % sid)
        bx = boxes(stored)
        stored_init = stored[:bx[1][1] + bx[1][2]]
        frags = [(o, s + bx[i + 1][2]) for i, (k, o, s) in enumerate(bx)
                 if k == "moof" and i + 1 < len(bx) and bx[i + 1][0] == "mdat"]
        assert frags, bx
        init, _ = self.media_get("g711", "media/%d?audio=flac" % sid)
        conv_frags = []
        for k, (off, size) in enumerate(frags):
            frag, r = self.media_get("g711", "media/%d?audio=flac&frag=%d" % (sid, k))
            assert [b[0] for b in boxes(frag)] == ["moof", "mdat"], boxes(frag)
            assert r.getheader("ETag") and "immutable" in r.getheader("Cache-Control")
            conv_frags.append(frag)
            conv = self.write("conv%d.mp4" % k, init, frag)
            orig = self.write("orig%d.mp4" % k, stored_init, stored[off:off + size])
            streams, got = probe_packets(conv)
            assert sorted(s["codec_name"] for s in streams) == ["flac", "h264"], streams
            _, want = probe_packets(orig)
            gv = [(p["pts_time"], p["data_hash"]) for p in got if p["codec_type"] == "video"]
            wv = [(p["pts_time"], p["data_hash"]) for p in want if p["codec_type"] == "video"]
            assert gv and gv == wv, "fragment %d: video not copied bit-exact" % k
            assert any(p["codec_type"] == "audio" for p in got), "fragment %d: no audio" % k
            # ffprobe's first packets agree with the boxes' own times
            gt, wt = track_times(init, frag), track_times(stored_init, stored[off:off + size])
            a, v = first_time(got, "audio"), first_time(got, "video")
            assert abs(a - gt["soun"][0]) < 0.001 and abs(v - gt["vide"][0]) < 0.001, (k, a, v, gt)
            assert gt["vide"] == wt["vide"], (k, gt, wt)
            # the audio covers exactly the fragment's video time
            assert abs(a - v) < SYNC_S, "fragment %d: audio starts at %.3f, video at %.3f" % (k, a, v)
            assert abs(gt["soun"][0] - gt["vide"][0]) < 0.001, (k, gt)
            assert abs(gt["soun"][1] - gt["vide"][1]) < 0.001, (k, gt)
        # the whole segment converted: one file, in sync, FLAC decodes
        whole = self.write("whole.mp4", init, *conv_frags)
        _, got = probe_packets(whole)
        a, v = first_time(got, "audio"), first_time(got, "video")
        assert abs(a - v) < SYNC_S, (a, v)
        ok, err = integration.decode_ok(whole)
        assert ok, err[-1000:]
        # every stored sample is in the FLAC at its own time, bit-exact
        # after decoding (G.711 -> 16-bit is exact, FLAC is lossless), and
        # what no stored sample covers is silence. The reference places each
        # stored packet's samples (ffmpeg's decoding, one byte a sample) at
        # the packet's own time: a camera's audio can have holes (a live
        # source that fell behind on a loaded machine skips samples), which
        # a decoding run together would not show.
        conv_pcm = self.pcm(whole)
        orig_pcm = self.pcm(self.write("stored.mov", stored))
        _, want = probe_packets(self.write("stored2.mov", stored))
        start = first_time(got, "audio")
        n = len(conv_pcm) // 2
        expect = [None] * n
        off = 0
        for pk in (x for x in want if x["codec_type"] == "audio"):
            size = int(pk["size"])
            t = round((float(pk["pts_time"]) - start) * 8000)
            for i in range(size):
                if 0 <= t + i < n:
                    expect[t + i] = orig_pcm[2 * (off + i):2 * (off + i) + 2]
            off += size
        assert off * 2 == len(orig_pcm), (off, len(orig_pcm))
        covered = sum(1 for e in expect if e is not None)
        assert covered > 8000, covered  # more than a second compared
        for i, e in enumerate(expect):
            got_s = conv_pcm[2 * i:2 * i + 2]
            if got_s != (e if e is not None else b"\0\0"):
                raise AssertionError("sample %d of %d (%.4f s after the start): converted %r, "
                                     "stored %r" % (i, n, i / 8000, got_s, e))

    def pcm(self, path):
        p = subprocess.run(["ffmpeg", "-v", "error", "-i", path, "-map", "0:a", "-f", "s16le",
                            "-ac", "1", "-"], capture_output=True, timeout=60)
        assert p.returncode == 0, p.stderr[-1000:]
        return p.stdout

    def test_d_ffmpeg_plays_the_converted_playlist(self):
        segs = self.segs("g711", 3)[:3]
        url = "http://127.0.0.1:%d/api/v1/sources/g711/playlist.m3u8?from=%s&to=%s" % (
            self.port, urllib.parse.quote(segs[0]["start"]), urllib.parse.quote(segs[-1]["end"]))
        p = subprocess.run(["ffprobe", "-v", "error", "-extension_picky", "0", "-headers",
                            "Cookie: %s\r\n" % self.admin.cookie, "-show_entries",
                            "stream=codec_name", "-of", "csv=p=0", url],
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stderr[-1000:]
        assert set(p.stdout.split()) == {"h264", "flac"}, p.stdout

    def test_e_range_and_conditional(self):
        seg = self.segs("g711", 2)[0]
        path = "/api/v1/sources/g711/media/%d?audio=flac&frag=0" % seg["id"]
        st, whole, r = self.get(path)
        assert st == 200 and r.getheader("Accept-Ranges") == "bytes", st
        etag = r.getheader("ETag")
        assert seg["sha256"] in etag and "flac" in etag, etag
        st, part, r = self.get(path, {"Range": "bytes=10-109"})
        assert st == 206 and part == whole[10:110], (st, len(part))
        assert r.getheader("Content-Range") == "bytes 10-109/%d" % len(whole)
        st, _, _ = self.get(path, {"If-None-Match": etag})
        assert st == 304, st
        st, _, _ = self.get(path, {"Range": "bytes=%d-" % (len(whole) + 5)})
        assert st == 416, st
        # the same request gives the same bytes (the ETag promises it)
        st, again, _ = self.get(path)
        assert again == whole
        # the init part's ETag differs from the fragments'
        st, _, r = self.get("/api/v1/sources/g711/media/%d?audio=flac" % seg["id"])
        assert r.getheader("ETag") != etag
        self.media += 3

    def test_f_bad_parameters(self):
        seg = self.segs("g711", 2)[0]
        cam = self.segs("cam", 1)[0]
        base = "/api/v1/sources/g711/media/%d" % seg["id"]
        for q, status, code in [("?audio=mp3", 400, "invalid_parameter"),
                                ("?audio=flac&frag=abc", 400, "invalid_parameter"),
                                ("?audio=flac&frag=-1", 400, "invalid_parameter"),
                                ("?audio=flac&frag=1234567", 400, "invalid_parameter"),
                                ("?audio=flac&frag=99999", 404, "not_found"),
                                ("?frag=0", 400, "invalid_parameter"),
                                ("?audio=flac&init=hvc1", 400, "invalid_parameter"),
                                ("?video=h264&frag=0", 400, "invalid_parameter"),
                                ("?video=vp9", 400, "invalid_parameter")]:
            st, data, _ = self.get(base + q)
            assert st == status and json.loads(data)["error"]["code"] == code, (q, st, data)
        st, data, _ = self.get("/api/v1/sources/cam/media/%d?audio=flac&frag=0" % cam["id"])
        assert st == 400, (st, data)  # no G.711 to convert
        st, data, _ = self.get("/api/v1/sources/cam/media/%d?audio=flac" % seg["id"])
        assert st == 404, (st, data)  # another source's segment
        st, data, _ = self.get("/api/v1/sources/g711/playlist.m3u8?video=av1")
        assert st == 400, (st, data)

    def test_g_stored_files_untouched(self):
        for seg in self.segs("g711", 2)[:2]:
            st, data, _ = self.get("/api/v1/sources/g711/media/%d" % seg["id"])
            assert st == 200 and hashlib.sha256(data).hexdigest() == seg["sha256"], seg["id"]
            self.media += 1

    def test_h_hevc_transcoded_to_h264(self):
        segs = self.segs("hevc", 2)[:2]
        text, maps, media, durs = self.playlist("hevc", segs, "&video=h264")
        assert maps and all(m[0].endswith("?video=h264") for m in maps), maps
        assert media and all("video=h264&frag=" in m for m in media), media
        sid = segs[0]["id"]
        init, _ = self.media_get("hevc", "media/%d?video=h264" % sid)
        assert b"avc1" in init and b"avcC" in init and b"hvc1" not in init and b"hev1" not in init
        first = [m for m in media if m.startswith("media/%d?" % sid)]
        parts, total = [], 0.0
        for k, uri in enumerate(first):
            frag, _ = self.media_get("hevc", uri)
            parts.append(frag)
            streams, pk = probe_packets(self.write("h%d.mp4" % k, init, frag))
            assert [s["codec_name"] for s in streams] == ["h264"], streams
            vids = [p for p in pk if p["codec_type"] == "video"]
            start, end = track_times(init, frag)["vide"]
            dur = end - start
            frame = (end - start) / len(vids)
            assert abs(dur - durs[k]) <= frame + 0.002, (k, dur, durs[k])
            total += dur
        whole = self.write("hevc.mp4", init, *parts)
        d = integration.ffprobe(whole, "stream=codec_name,width,height")
        assert d["streams"][0]["codec_name"] == "h264", d
        ok, err = integration.decode_ok(whole)
        assert ok, err[-1000:]
        # without video=h264 the stored H.265 is named as before
        text, maps, _, _ = self.playlist("hevc", segs)
        assert "#EXT-X-BYTERANGE" in text and "?init=hvc1" in maps[0][0], maps

    def test_i_transcode_limit_answers_503(self):
        seg = self.segs("hevc", 2)[1]
        path = "/api/v1/sources/hevc/media/%d?video=h264&frag=0" % seg["id"]
        # The one slot (transcode_max = 1) is held by a request whose open of
        # the stored file stalls.
        import sqlite3
        con = sqlite3.connect("file:%s?mode=ro" % os.path.join(self.v.data, "index.db"),
                              uri=True, timeout=10)
        try:
            rel = con.execute("SELECT path FROM segment WHERE id = ?", (seg["id"],)).fetchone()[0]
        finally:
            con.close()
        # The shim looks at its rules at most every 50 ms: a request racing
        # the new rule may miss it and finish at once; then it is tried again.
        for attempt in range(10):
            self.v.set_faults("open %s delay=4000 count=1\n#%s\n" %
                              (os.path.basename(rel), "#" * attempt))
            res = {}
            t = threading.Thread(target=lambda: res.update(first=self.get(path)[:2]))
            t.start()
            stalled = lambda: any("open delay=4000" in l for l in self.v.fired_lines())
            wait_for("the stalled open or the answer", lambda: stalled() or not t.is_alive(), 30)
            if stalled():
                break
            t.join()
        assert stalled(), "the stalled open never happened"
        st, data, r = self.get(path)
        assert st == 503 and json.loads(data)["error"]["code"] == "busy", (st, data)
        assert r.getheader("Retry-After"), "no Retry-After"
        t.join(60)
        self.v.set_faults("")
        assert res["first"][0] == 200, res
        st, _, _ = self.get(path)
        assert st == 200, st  # the slot was given back
        self.media += 2

    def test_z_audit_and_clean_exit(self):
        rc, _ = self.v.stop()
        assert rc == 0, "vigild exited with %s:\n%s" % (rc, self.v.log_text()[-3000:])
        import sqlite3
        con = sqlite3.connect("file:%s?mode=ro" % os.path.join(self.v.data, "index.db"),
                              uri=True, timeout=10)
        try:
            rows = con.execute("SELECT object, detail FROM audit WHERE action = 'view.media' "
                               "AND result = 'ok'").fetchall()
        finally:
            con.close()
        total = sum(int(re.search(r"count=(\d+)", d).group(1)) for _, d in rows)
        # aggregated: one row per (user, source, minute), many requests each
        assert total >= self.media and len(rows) < total, (len(rows), total, self.media)
        assert {o for o, _ in rows} >= {"source:g711", "source:hevc"}, rows


def main():
    return integration.suite_main(Suite, "convert")


if __name__ == "__main__":
    sys.exit(main())
