#!/usr/bin/env python3
"""Integration tests of playback over HTTP against one real vigild recording
the camera simulator (2 s segments): the HLS playlist (its byte ranges are
exactly the moof+mdat boxes of the stored files), ffmpeg playing it end to
end with the session cookie, a gap, the media route's Range and conditional
answers, 404s for invisible sources and deleted segments, H.265 init parts
relabelled hvc1, the fragment table read from the file when the index has
none, the multi-source timeline, and the audit rows (one per playlist, the
media requests aggregated).

Reuses tests/integration.py and tests/integration_web.py. Ends with
"N passed, N failed".
"""
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.parse

import integration
from integration import Camsim, Skip, log, wait_for
from integration_web import Client, WebVigil, free_port, wait_http

SOURCES = ["cam", "hevc", "g711", "line", "flaky"]


def boxes(data):
    """Top-level boxes of an ISO BMFF file: [(type, offset, size)]."""
    out, off = [], 0
    while off + 8 <= len(data):
        size = int.from_bytes(data[off:off + 4], "big")
        kind = data[off + 4:off + 8].decode("latin-1")
        head = 8
        if size == 1:
            size, head = int.from_bytes(data[off + 8:off + 16], "big"), 16
        elif size == 0:
            size = len(data) - off
        assert size >= head, (kind, off, size)
        out.append((kind, off, size))
        off += size
    assert off == len(data), "boxes do not add up to the file"
    return out


def parse_playlist(text):
    """Checks the playlist's frame and returns its entries: dicts with map
    (uri, length), pdt, discontinuity, duration, uri, length, offset."""
    lines = text.strip().split("\n")
    assert lines[0] == "#EXTM3U", lines[:3]
    assert "#EXT-X-VERSION:7" in lines and "#EXT-X-PLAYLIST-TYPE:VOD" in lines
    assert lines[-1] == "#EXT-X-ENDLIST"
    target = int(next(l for l in lines if l.startswith("#EXT-X-TARGETDURATION:")).split(":")[1])
    entries, cur = [], {}
    for line in lines:
        if line.startswith("#EXT-X-DISCONTINUITY"):
            cur["discontinuity"] = True
        elif line.startswith("#EXT-X-MAP:"):
            m = re.match(r'#EXT-X-MAP:URI="([^"]+)",BYTERANGE="(\d+)@0"', line)
            assert m, line
            cur["map"] = (m.group(1), int(m.group(2)))
        elif line.startswith("#EXT-X-PROGRAM-DATE-TIME:"):
            assert re.match(r"#EXT-X-PROGRAM-DATE-TIME:\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$",
                            line), line
            cur["pdt"] = line.split(":", 1)[1]
        elif line.startswith("#EXTINF:"):
            cur["duration"] = float(line[8:].rstrip(","))
            assert round(cur["duration"]) <= target, (line, target)
        elif line.startswith("#EXT-X-BYTERANGE:"):
            n, o = line.split(":")[1].split("@")
            cur["length"], cur["offset"] = int(n), int(o)
        elif line and not line.startswith("#"):
            cur["uri"] = line
            entries.append(cur)
            cur = {}
    return entries


def iso(us):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(us // 1000000)) + \
        ".%06dZ" % (us % 1000000)


def parse_iso(text):
    """RFC 3339 UTC with a fraction -> unix µs."""
    import calendar
    base, frac = text.rstrip("Z").split(".")
    return calendar.timegm(time.strptime(base, "%Y-%m-%dT%H:%M:%S")) * 1000000 + \
        int((frac + "000000")[:6])


class Suite:
    def __init__(self, tmp):
        self.tmp = tmp
        self.cam = Camsim()
        root = os.path.join(tmp, "v")
        self.port = free_port()
        c = self.cam
        self.v = WebVigil(root, [("cam", c.url("h264"), "video"), ("hevc", c.url("h265"), "video"),
                                 ("g711", c.url("cam-g711"), "video"),
                                 ("line", c.url("line-pcma"), "audio"),
                                 ("flaky", c.url("flaky"), "video")],
                          "http_listen = 127.0.0.1:%d\n" % self.port)
        self.v.add_user("admin", "admin")
        self.v.add_user("guard", "security", sources="cam")
        self.v.start()
        wait_http(self.port)
        self.db = os.path.join(self.v.data, "index.db")
        self.admin = Client(self.port)
        self.admin.login("admin")
        self.guard = Client(self.port)
        self.guard.login("guard")
        self.media_requests = 0
        self.playlists = 0

    def close(self):
        self.v.stop()
        self.cam.stop()

    def segs(self, source, n):
        def enough():
            st, body, _ = self.admin.request("GET", "/api/v1/sources/%s/segments" % source)
            return st == 200 and len(body["segments"]) >= n and body["segments"]
        return wait_for("%d segments of %s" % (n, source), enough, 60)

    def get(self, path, client=None, headers=None):
        client = client or self.admin
        c = client.conn()
        h = {"Cookie": client.cookie}
        h.update(headers or {})
        c.request("GET", path, headers=h)
        r = c.getresponse()
        data = r.read()
        c.close()
        if "/media/" in path and r.status in (200, 206):
            self.media_requests += 1
        return r.status, data, r

    def playlist(self, source, from_us, to_us, client=None):
        st, data, r = self.get("/api/v1/sources/%s/playlist.m3u8?from=%s&to=%s" %
                               (source, urllib.parse.quote(iso(from_us)),
                                urllib.parse.quote(iso(to_us))), client)
        if st == 200:
            self.playlists += 1
            assert r.getheader("Content-Type") == "application/vnd.apple.mpegurl"
        return st, data

    def sql(self, query, args=()):
        con = sqlite3.connect("file:%s?mode=ro" % self.db, uri=True, timeout=10)
        try:
            return con.execute(query, args).fetchall()
        finally:
            con.close()

    def sql_write(self, query, args=()):
        con = sqlite3.connect(self.db, timeout=10)
        try:
            con.execute(query, args)
            con.commit()
        finally:
            con.close()

    def check_ranges(self, source, segs):
        """The playlist over whole segments names exactly their moof+mdat pairs."""
        from_us, to_us = parse_iso(segs[0]["start"]), parse_iso(segs[-1]["end"])
        st, data = self.playlist(source, from_us, to_us)
        assert st == 200, (st, data)
        entries = parse_playlist(data.decode())
        ids = [s["id"] for s in segs]
        by_id = {}
        for e in entries:
            by_id.setdefault(int(e["uri"].split("/")[1]), []).append(e)
        assert set(ids) <= set(by_id), (ids, list(by_id))
        for sid in ids:
            st, file_bytes, _ = self.get("/api/v1/sources/%s/media/%d" % (source, sid))
            assert st == 200, st
            bx = boxes(file_bytes)
            pairs = [(o, s + bx[i + 1][2]) for i, (k, o, s) in enumerate(bx)
                     if k == "moof" and i + 1 < len(bx) and bx[i + 1][0] == "mdat"]
            got = [(e["offset"], e["length"]) for e in by_id[sid]]
            assert got == pairs, (sid, got, pairs)
            first = by_id[sid][0]
            assert first.get("discontinuity") or sid == ids[0] or entries[0] is first
            assert first["map"][1] == pairs[0][0], (first["map"], pairs[0])
            assert "pdt" in first
        return entries

    # ---- tests (run in name order) ----

    def test_a_fragment_table_written_with_the_row(self):
        segs = self.segs("cam", 3)
        ids = [s["id"] for s in segs]
        have = {r[0] for r in self.sql("SELECT segment_id FROM segment_frag")}
        assert set(ids) <= have, (ids, have)
        self.check_ranges("cam", segs)

    def test_b_playlist_ranges_for_every_kind(self):
        # (G.711 sources get converted media: integration_convert.py)
        for source in ("hevc",):
            segs = self.segs(source, 2)
            entries = self.check_ranges(source, segs)
            assert len([e for e in entries if "map" in e]) >= 2, source

    def test_c_ffmpeg_plays_the_playlist(self):
        segs = self.segs("cam", 3)
        url = "http://127.0.0.1:%d/api/v1/sources/cam/playlist.m3u8?from=%s&to=%s" % (
            self.port, urllib.parse.quote(segs[0]["start"]), urllib.parse.quote(segs[-1]["end"]))
        # Debian's FFmpeg refuses segment URLs without a media extension
        # unless told (extension_picky); the media URLs are ids.
        p = subprocess.run(["ffmpeg", "-v", "error", "-extension_picky", "0", "-headers", "Cookie: %s\r\n" %
                            self.admin.cookie, "-i", url, "-f", "null", "-"],
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stderr[-2000:]
        p = subprocess.run(["ffprobe", "-v", "error", "-extension_picky", "0", "-headers", "Cookie: %s\r\n" %
                            self.admin.cookie, "-show_entries", "stream=codec_name,width",
                            "-of", "csv=p=0", url], capture_output=True, text=True, timeout=60)
        assert p.returncode == 0 and "h264" in p.stdout, (p.stdout, p.stderr[-1000:])
        self.media_requests += 2 * sum(1 for _ in segs)  # at least; exact count not asserted
        self.playlists += 2

    def test_d_gap_gives_discontinuity_and_timeline_gap(self):
        self.segs("flaky", 2)
        down_at = self.cam.signal(signal.SIGUSR1, "FLAKY down")

        def finalized():
            st, body, _ = self.admin.request("GET", "/api/v1/sources/flaky/segments")
            return any(parse_iso(g["end"]) >= (down_at - 1.5) * 1e6 for g in body["segments"])
        # the segment in progress is finalized when the stream drops
        wait_for("flaky segment finalized", finalized, 20)
        # down long enough that the gap is one the timeline draws (>= 1.5 s)
        wait_for("3 s down", lambda: time.time() - down_at >= 3, 4)
        self.cam.signal(signal.SIGUSR2, "FLAKY up")

        def after_gap():
            st, body, _ = self.admin.request("GET", "/api/v1/sources/flaky/segments")
            segs = body["segments"]
            for a, b in zip(segs, segs[1:]):
                if parse_iso(b["start"]) - parse_iso(a["end"]) >= 1500000 and \
                        parse_iso(b["start"]) > down_at * 1e6:
                    return segs
            return None
        try:
            segs = wait_for("a segment after the gap", after_gap, 60)
        except AssertionError:
            log("flaky: %s" % self.admin.request("GET", "/api/v1/sources/flaky/segments")[1])
            log(self.v.log_text()[-3000:])
            raise
        from_us, to_us = parse_iso(segs[0]["start"]), parse_iso(segs[-1]["end"])
        st, data = self.playlist("flaky", from_us, to_us)
        assert st == 200, st
        entries = parse_playlist(data.decode())
        pdts = [parse_iso(e["pdt"]) for e in entries if "pdt" in e]
        gaps = [b - a for a, b in zip(pdts, pdts[1:])]
        assert any(e.get("discontinuity") for e in entries)
        assert max(gaps) > 1500000, gaps
        st, tl, _ = self.admin.request("GET", "/api/v1/timeline?from=%s&to=%s&sources=flaky" % (
            urllib.parse.quote(iso(from_us)), urllib.parse.quote(iso(to_us))))
        assert st == 200, tl
        src = tl["sources"][0]
        assert src["name"] == "flaky" and len(src["spans"]) >= 2 and src["gaps"], src
        for g in src["gaps"]:
            assert parse_iso(g["end"]) - parse_iso(g["start"]) >= 1500000, g

    def test_e_bad_input(self):
        now = int(time.time() * 1e6)
        st, data = self.playlist("cam", now, now - 10 ** 6)
        assert st == 400 and b"invalid_range" in data, (st, data)
        st, data = self.playlist("cam", now - 10 * 86400 * 10 ** 6, now - 9 * 86400 * 10 ** 6)
        assert st == 404 and b"no_recording" in data, (st, data)
        st, data = self.playlist("nosuch", now - 10 ** 7, now)
        assert st == 404 and b"not_found" in data, (st, data)
        st, data, _ = self.get("/api/v1/sources/cam/playlist.m3u8?from=yesterday")
        assert st == 400, st
        for bad in ("abc", "0", "-1", "99999999999999999999", "1x"):
            st, data, _ = self.get("/api/v1/sources/cam/media/%s" % bad)
            assert st == 400 and b"invalid_id" in data, (bad, st, data)
        st, data, _ = self.get("/api/v1/sources/cam/media/1?init=foo")
        assert st == 400, st
        st, data, _ = self.get("/api/v1/sources/cam/media/999999999")
        assert st == 404, st
        # another source's segment through this source's route
        other = self.segs("hevc", 1)[0]["id"]
        st, data, _ = self.get("/api/v1/sources/cam/media/%d" % other)
        assert st == 404, st

    def test_f_invisible_source_is_unknown(self):
        now = int(time.time() * 1e6)
        seg = self.segs("hevc", 1)[0]
        st, data = self.playlist("hevc", now - 60 * 10 ** 6, now, client=self.guard)
        assert st == 404 and b"not_found" in data, (st, data)
        st, data, _ = self.get("/api/v1/sources/hevc/media/%d" % seg["id"], client=self.guard)
        assert st == 404, st
        st, data = self.playlist("cam", now - 60 * 10 ** 6, now, client=self.guard)
        assert st == 200, st
        st, tl, _ = self.guard.request("GET", "/api/v1/timeline?sources=cam,hevc,nosuch")
        assert st == 200 and [s["name"] for s in tl["sources"]] == ["cam"], tl
        st, tl, _ = self.guard.request("GET", "/api/v1/timeline")
        assert [s["name"] for s in tl["sources"]] == ["cam"], tl
        st, tl, _ = self.admin.request("GET", "/api/v1/timeline")
        assert sorted(s["name"] for s in tl["sources"]) == sorted(SOURCES), tl
        cam = next(s for s in tl["sources"] if s["name"] == "cam")
        assert len(cam["spans"]) == 1, cam  # abutting segments make one span
        st, tl, _ = self.admin.request("GET", "/api/v1/timeline?from=10&to=5")
        assert st == 400, tl

    def test_g_range_edge_cases(self):
        seg = self.segs("cam", 1)[0]
        path = "/api/v1/sources/cam/media/%d" % seg["id"]
        st, whole, r = self.get(path)
        size = len(whole)
        assert st == 200 and size == seg["bytes"], (st, size, seg["bytes"])
        assert r.getheader("ETag") == '"%s"' % seg["sha256"], r.getheader("ETag")
        assert r.getheader("Accept-Ranges") == "bytes"
        assert "immutable" in r.getheader("Cache-Control") and \
            "private" in r.getheader("Cache-Control")
        assert r.getheader("Content-Type") == "video/mp4"
        st, data, r = self.get(path, headers={"Range": "bytes=-100"})
        assert st == 206 and data == whole[-100:], st
        assert r.getheader("Content-Range") == "bytes %d-%d/%d" % (size - 100, size - 1, size)
        st, data, _ = self.get(path, headers={"Range": "bytes=100-"})
        assert st == 206 and data == whole[100:], st
        st, data, _ = self.get(path, headers={"Range": "bytes=10-19"})
        assert st == 206 and data == whole[10:20], st
        st, data, r = self.get(path, headers={"Range": "bytes=%d-" % size})
        assert st == 416 and r.getheader("Content-Range") == "bytes */%d" % size, st
        st, data, _ = self.get(path, headers={"If-None-Match": '"%s"' % seg["sha256"]})
        assert st == 304 and data == b"", st
        st, data, _ = self.get(path, headers={"Range": "bytes=0-9,20-29"})
        assert st == 200 and data == whole, st
        line = self.segs("line", 1)[0]
        st, data, r = self.get("/api/v1/sources/line/media/%d" % line["id"],
                               headers={"Range": "bytes=0-7"})
        assert st == 206 and r.getheader("Content-Type") == "audio/mp4", st

    def test_h_hevc_init_relabelled_hvc1(self):
        segs = self.segs("hevc", 2)
        st, whole, _ = self.get("/api/v1/sources/hevc/media/%d" % segs[0]["id"])
        stored = b"hev1" if b"hev1" in whole[:4096] else b"hvc1"
        st, data = self.playlist("hevc", parse_iso(segs[0]["start"]), parse_iso(segs[1]["end"]))
        entries = parse_playlist(data.decode())
        maps = [e["map"] for e in entries if "map" in e]
        assert all(m[0].endswith("?init=hvc1") for m in maps), maps
        uri, n = maps[0]
        st, init, r = self.get("/api/v1/sources/hevc/" + uri, headers={"Range": "bytes=0-%d" % (n - 1)})
        assert st == 206 and len(init) == n, (st, len(init), n)
        if stored == b"hvc1":
            assert init == whole[:n] and r.getheader("ETag") == '"%s"' % segs[0]["sha256"]
            raise Skip("the writer stores hvc1 already: nothing to relabel")
        assert b"hvc1" in init and b"hev1" not in init
        assert init.replace(b"hvc1", b"hev1") == whole[:n]
        # the whole relabelled file, through the reader, is the file but for 4 bytes
        st, full, _ = self.get("/api/v1/sources/hevc/" + uri)
        assert st == 200 and len(full) == len(whole) and full[n:] == whole[n:]
        assert r.getheader("ETag") != '"%s"' % segs[0]["sha256"]

    def test_i_table_read_from_the_file_when_missing(self):
        segs = self.segs("cam", 3)
        sid = segs[1]["id"]
        self.sql_write("DELETE FROM segment_frag WHERE segment_id = ?", (sid,))
        assert not self.sql("SELECT 1 FROM segment_frag WHERE segment_id = ?", (sid,))
        self.check_ranges("cam", segs[:3])
        assert self.sql("SELECT 1 FROM segment_frag WHERE segment_id = ?", (sid,))

    def test_j_deleted_segment_is_404(self):
        segs = self.segs("cam", 3)
        sid = segs[0]["id"]
        path = "/api/v1/sources/cam/media/%d" % sid
        assert self.get(path)[0] == 200
        # phase one of the two-phase delete
        self.sql_write("UPDATE segment SET deleting = 1 WHERE id = ?", (sid,))
        st, data, _ = self.get(path)
        assert st == 404, st
        st, data = self.playlist("cam", parse_iso(segs[0]["start"]), parse_iso(segs[2]["end"]))
        assert ("media/%d\n" % sid).encode() not in data

    def test_z_audit_rows(self):
        """Last: stops vigild so the aggregated rows of this minute are written."""
        n_playlists, n_media = self.playlists, self.media_requests
        rc, _ = self.v.stop()
        # a sanitizer build exits non-zero on a leak or memory error
        assert rc == 0, "vigild exited with %s:\n%s" % (rc, self.v.log_text()[-3000:])
        rows = self.sql("SELECT actor, action, object, detail, from_us, to_us FROM audit "
                        "WHERE action IN ('view', 'view.media') AND result = 'ok'")
        views = [r for r in rows if r[1] == "view" and r[3].startswith("playlist ")]
        assert len(views) == n_playlists, (len(views), n_playlists)
        media = [r for r in rows if r[1] == "view.media"]
        assert media, rows
        # one row per (actor, source, minute): far fewer rows than requests
        total = sum(int(re.search(r"count=(\d+)", r[3]).group(1)) for r in media)
        assert total >= n_media and len(media) < total, (len(media), total, n_media)
        keys = {(r[0], r[2]) for r in media}
        assert len(media) <= len(keys) * 4, (len(media), keys)  # the suite spans few minutes
        for r in media:
            assert re.match(r"count=\d+ ranges=\d+-\d+", r[3]), r


def main():
    return integration.suite_main(Suite, "playback")


if __name__ == "__main__":
    sys.exit(main())
