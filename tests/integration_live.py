#!/usr/bin/env python3
"""Integration tests of browser live view (README "Live view") against one
camera simulator and one vigild: WHEP driven by Debian's chromium (a real
WebRTC peer: connection, decoded frames, frame size, PCMA samples), DELETE
and the viewer count, the refusals (404, 406 for H.265 and B-frames, 415,
401, 403 without the CSRF header, 503 past max_viewers), the fMP4 fallback
checked with ffprobe, the audit rows of a viewing's start and end,
revocation ending a viewing, a camera reconnect and a camera's timestamps
jumping back (neither taken for B-frames, live view going on), and
recording going on throughout.

Reuses the helpers of tests/integration.py and tests/integration_web.py.
Ends with "N passed, N failed".
"""
import http.client
import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.request
import zlib

import integration
from integration import Camsim, Skip, ffprobe, log, wait_for
from integration_web import PASSWORD, Client, WebVigil, wait_http

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCES = [("hall", "h264", "video"), ("gate", "cam-g711", "video"),
           ("bframes", "h264b", "video"), ("hevc", "h265", "video"),
           ("line", "line-pcma", "audio"), ("flaky", "flaky", "video"),
           ("jumpy", "h264-jump", "video")]
MAX_VIEWERS = 3


def whep_client(cfg):
    """Runs tests/ui/whep_client.mjs; returns what it printed."""
    cfg = dict(cfg, connect_s=8 * integration.TIMEOUT_SCALE)  # slower under sanitizers
    p = subprocess.run(["node", os.path.join(HERE, "ui", "whep_client.mjs"), json.dumps(cfg)],
                       capture_output=True, text=True, timeout=90 * integration.TIMEOUT_SCALE,
                       cwd=os.path.join(HERE, "ui"))
    lines = [l for l in p.stdout.splitlines() if l.startswith("{")]
    assert lines, "whep client printed nothing: %s" % p.stderr[-2000:]
    return json.loads(lines[-1])


class StunServer:
    """A STUN server (Binding only, RFC 3489 and 5389) on a UDP port, given to
    vigild as [live] stun: it answers every Binding request with the sender's
    address, until `silent` is set; then vigild's ICE gathering waits for it
    (up to the 5 s vigild allows), which holds WHEP offers in flight."""
    COOKIE = 0x2112A442

    def __init__(self):
        # On the address this host sends from: libnice sends from each
        # interface's candidate through that interface (IP_UNICAST_IF), so a
        # server on 127.0.0.1 is never reached from eth0's.
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            probe.connect(("198.51.100.1", 9))  # no packet is sent
            self.host = probe.getsockname()[0]
        except OSError:
            self.host = "127.0.0.1"
        finally:
            probe.close()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((self.host, 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.silent = False
        self.answered = 0
        self.stopping = False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def reply(self, req, peer):
        ip = struct.unpack("!I", socket.inet_aton(peer[0]))[0]
        if struct.unpack("!I", req[4:8])[0] != self.COOKIE:
            # RFC 3489 (libnice asks STUN servers this way): MAPPED-ADDRESS
            mapped = struct.pack("!BBHI", 0, 1, peer[1], ip)
            attrs = struct.pack("!HH", 0x0001, len(mapped)) + mapped
            return struct.pack("!HH", 0x0101, len(attrs)) + req[4:20] + attrs
        xor = struct.pack("!BBHI", 0, 1, peer[1] ^ (self.COOKIE >> 16), ip ^ self.COOKIE)
        attrs = struct.pack("!HH", 0x0020, len(xor)) + xor  # XOR-MAPPED-ADDRESS
        # FINGERPRINT: CRC-32 of the message up to it, its length counted
        head = struct.pack("!HHI", 0x0101, len(attrs) + 8, self.COOKIE) + req[8:20]
        crc = (zlib.crc32(head + attrs) ^ 0x5354554E) & 0xFFFFFFFF
        return head + attrs + struct.pack("!HHI", 0x8028, 4, crc)

    def run(self):
        while not self.stopping:
            try:
                req, peer = self.sock.recvfrom(2048)
            except socket.timeout:
                continue
            except OSError:
                return
            if len(req) < 20 or struct.unpack("!H", req[:2])[0] != 0x0001 or self.silent:
                continue  # a Binding request is answered
            self.sock.sendto(self.reply(req, peer), peer)
            self.answered += 1

    def stop(self):
        self.stopping = True
        self.thread.join(5)
        self.sock.close()


class Suite:
    def __init__(self, tmp):
        self.tmp = tmp
        self.cam = Camsim()
        self.stun = StunServer()
        srcs = [(n, self.cam.url(m), k) for n, m, k in SOURCES]
        extra = ("[live]\nmax_viewers = %d\nmax_viewers_per_user = 2\nstun = stun://%s:%d\n"
                 % (MAX_VIEWERS, self.stun.host, self.stun.port))
        port = integration.free_port()
        self.v = WebVigil(os.path.join(tmp, "v"), srcs, "http_listen = 127.0.0.1:%d\n" % port,
                          extra=extra)
        self.v.http_port = port
        self.v.add_user("guard", "security")
        self.v.add_user("night", "security")
        self.v.start()
        wait_http(self.v.http_port)
        self.base = "http://127.0.0.1:%d" % self.v.http_port
        self.admin_token = self.v.ctl("token", "add", "ops", "--perm", "admin").stdout.strip()
        self.live_token = self.v.ctl("token", "add", "wall", "--perm", "live").stdout.strip()
        self.admin = Client(self.v.http_port)
        self.admin.token = self.admin_token
        self.guard = Client(self.v.http_port)
        self.guard.login("guard")
        self.offer = None
        # every source connected and recording before the first test
        for name, _, _ in SOURCES:
            wait_for("%s recording" % name, lambda n=name: self.source(n)["status"] == "recording",
                     30)
        self.segments_at_start = {n: len(self.v.segments(n)) for n, _, _ in SOURCES}

    def close(self):
        try:
            code, _ = self.v.stop(timeout=10)
            assert code == 0, "vigild exited %s: %s" % (code, self.v.log_text()[-3000:])
        finally:
            self.cam.stop()
            self.stun.stop()
            if os.environ.get("VIGIL_LIVE_DEBUG"):  # keep vigild's log for a look
                import shutil
                shutil.copy(self.v.logpath, os.environ["VIGIL_LIVE_DEBUG"])

    def source(self, name):
        status, body, _ = self.admin.request("GET", "/api/v1/sources/" + name)
        assert status == 200, (status, body)
        return body

    def live(self, client=None):
        status, body, _ = (client or self.admin).request("GET", "/api/v1/live")
        assert status == 200, (status, body)
        return body

    def post_offer(self, source, sdp, headers=None, ctype="application/sdp"):
        """POSTs an SDP offer with raw headers; returns (status, headers, body)."""
        h = {"Content-Type": ctype} if ctype else {}
        h.update(headers if headers is not None else {"Authorization": "Bearer " + self.live_token})
        req = urllib.request.Request("%s/api/v1/sources/%s/whep" % (self.base, source),
                                     data=sdp.encode(), headers=h, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, dict(r.headers), r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read().decode()

    def delete(self, location, token=None):
        req = urllib.request.Request(self.base + location, method="DELETE",
                                     headers={"Authorization": "Bearer " + (token or self.live_token)})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code

    def audit_rows(self, action="live.view"):
        status, body, _ = self.admin.request("GET", "/api/v1/audit?action=%s&limit=500" % action)
        assert status == 200, (status, body)
        return body.get("rows", body.get("entries", []))

    def browser_offer(self):
        """An offer chromium made (video and audio, recvonly), for the
        refusal tests that need no media to flow."""
        if not self.offer:
            out = whep_client({"base": self.base, "source": "nosuch", "audio": True,
                               "auth": {"Authorization": "Bearer " + self.live_token}})
            assert out.get("status") == 404, out
            self.offer = out["offer"]
        return self.offer

    # ---- WHEP with a real browser ----

    def test_a_whep_video_and_pcma_in_chromium(self):
        out = whep_client({"base": self.base, "source": "gate", "audio": True, "seconds": 4,
                           "delete": True, "debug": bool(os.environ.get("VIGIL_LIVE_DEBUG")),
                           "auth": {"Authorization": "Bearer " + self.live_token}})
        self.offer = out.get("offer")
        assert out.get("status") == 201, out
        assert out["content_type"].startswith("application/sdp"), out
        assert out["location"].startswith("/api/v1/whep/"), out
        states = [s["state"] for s in out["steps"]]
        assert "connected" in states, states
        frames = [s.get("framesDecoded", 0) for s in out["steps"] if s["state"] == "connected"]
        assert frames and frames[-1] > frames[0] and frames[-1] >= 25
        last = out["steps"][-1]
        assert (last.get("frameWidth"), last.get("frameHeight")) == (320, 240), last
        assert last.get("audioMime") == "audio/PCMA", last
        samples = [s.get("totalSamplesReceived", 0) for s in out["steps"] if s["state"] == "connected"]
        assert samples[-1] > samples[0] > 0 or samples[-1] > 8000, samples
        log("first frame %s ms after the POST (answer in %s ms)"
            % (out.get("first_frame_ms"), out.get("answer_ms")))
        assert out.get("delete_status") == 200, out
        wait_for("no live viewers", lambda: self.live()["viewers"] == 0, 10)
        sid = out["location"].rsplit("/", 1)[1]
        rows = [r for r in self.audit_rows() if sid in r.get("detail", "")]
        details = sorted(r["detail"] for r in rows)
        assert any("phase=start" in d and "transport=webrtc" in d for d in details), details
        wait_for("the end row", lambda: any(
            "phase=end" in r.get("detail", "") and "reason=closed" in r.get("detail", "")
            for r in self.audit_rows() if sid in r.get("detail", "")), 10)
        assert self.delete(out["location"]) == 404


    # ---- refusals ----

    def test_d_refusals(self):
        offer = self.browser_offer()
        # unknown source; no credentials; wrong content type
        assert self.post_offer("nosuch", offer)[0] == 404
        assert self.post_offer("hall", offer, headers={})[0] == 401
        st, _, body = self.post_offer("hall", offer, ctype="text/plain")
        assert st == 415, (st, body)
        # a session cookie without the CSRF header
        st, _, body = self.post_offer("hall", offer, headers={"Cookie": self.guard.cookie})
        assert st == 403 and "csrf" in body, (st, body)
        # codecs WebRTC cannot carry: 406 with the codec and the fallback
        for source, codec in (("hevc", "H265"), ("bframes", "H264 (B-frames)")):
            st, _, body = self.post_offer(source, offer)
            assert st == 406, (source, st, body)
            j = json.loads(body)
            assert j["codec"] == codec and j["error"]["code"] == "codec_unsupported", j
            assert j["fallback"] == "/api/v1/sources/%s/live.mp4" % source, j
        # an offer without H.264 at all
        st, _, body = self.post_offer("hall", offer.replace("H264/90000", "X264/90000"))
        assert st == 406 and json.loads(body)["codec"].startswith("H264"), (st, body)
        # hostile offers: not SDP, binary, no m-line, larger than 64 KiB
        for bad in ("hello", "v=0\r\n\x01\x02", "v=0\r\ns=-\r\nt=0 0\r\n",
                    "v=0\r\n" + "a=x:" + "y" * 70000 + "\r\n"):
            st, _, body = self.post_offer("hall", bad)
            assert st in (400, 413), (st, body[:200])
            assert json.loads(body)["error"]["code"], body[:200]
        # trickle ICE is not offered: PATCH is not a method of the session
        req = urllib.request.Request(self.base + "/api/v1/whep/0123", method="PATCH",
                                     headers={"Authorization": "Bearer " + self.live_token,
                                              "Content-Type": "application/trickle-ice-sdpfrag"},
                                     data=b"a=end-of-candidates\r\n")
        try:
            urllib.request.urlopen(req, timeout=10)
            assert False, "PATCH answered 2xx"
        except urllib.error.HTTPError as e:
            assert e.code == 405, e.code
        # none of the refused offers left a viewer (the earlier tests' live.mp4
        # readers are let go when vigild sees their connection close: polled)
        wait_for("no live viewers", lambda: self.live()["viewers"] == 0, 10)
        log("recording meanwhile: %s" % {n: len(self.v.segments(n)) for n, _, _ in SOURCES})

    def test_e_limits_and_ownership(self):
        offer = self.browser_offer()
        made = []
        try:
            for _ in range(2):  # max_viewers_per_user = 2
                st, h, body = self.post_offer("hall", offer)
                assert st == 201, (st, body)
                made.append((h["Location"], self.live_token))
            # a video-only camera answers the offer's audio section without sending
            sections = body.split("m=")[1:]
            assert len(sections) == 2 and sections[0].startswith("video"), body
            assert "a=sendonly" in sections[0] and "a=sendonly" not in sections[1], body
            assert "a=candidate:" in body, body
            st, h, body = self.post_offer("hall", offer)
            assert st == 503 and h.get("Retry-After"), (st, h, body)
            st, h, body = self.post_offer("hall", offer,
                                          headers={"Authorization": "Bearer " + self.admin_token})
            assert st == 201, (st, body)
            made.append((h["Location"], self.admin_token))
            # max_viewers = 3 in all
            st, h, body = self.post_offer("hall", offer, headers={
                "Cookie": self.guard.cookie, "X-Requested-With": "vigil"})
            assert st == 503 and h.get("Retry-After"), (st, h, body)
            assert json.loads(body)["error"]["code"] == "too_many_viewers", body
            body = self.live()
            assert body["viewers"] == 3 and body["max_viewers"] == MAX_VIEWERS, body
            assert body["max_viewers_per_user"] == 2, body
            assert {s["transport"] for s in body["sessions"]} == {"webrtc"}, body
            assert {s["source"] for s in body["sessions"]} == {"hall"}, body
            assert self.source("hall")["live"]["viewers"] == 3
            metrics = urllib.request.urlopen(self.base + "/metrics", timeout=10).read().decode()
            assert re.search(r'vigil_live_viewers\{source="hall"\} 3\b', metrics), \
                [l for l in metrics.splitlines() if "live" in l]
            # a non-admin sees its own sessions only, and cannot end others'
            mine = self.live(self.guard)
            assert mine["sessions"] == [] and mine["viewers"] == 0, mine
            st, _, _ = self.guard.request("DELETE", made[0][0])
            assert st == 404, st
        finally:
            for loc, token in made:
                assert self.delete(loc, token) == 200
        wait_for("no live viewers", lambda: self.live()["viewers"] == 0, 10)

    def test_f_source_says_whether_webrtc_carries_it(self):
        hall, hevc, bframes = self.source("hall"), self.source("hevc"), self.source("bframes")
        assert hall["live"]["webrtc"] is True and hall["live"]["reason"] is None, hall["live"]
        assert hevc["live"]["webrtc"] is False and "H265" in hevc["live"]["reason"], hevc["live"]
        assert bframes["live"]["webrtc"] is False and "B-frames" in bframes["live"]["reason"]
        assert hall["bitrate_bps"] >= 0

    def test_g_revocation_ends_a_viewing(self):
        night = Client(self.v.http_port)
        night.login("night")
        st, h, body = self.post_offer("hall", self.browser_offer(), headers={
            "Cookie": night.cookie, "X-Requested-With": "vigil"})
        assert st == 201, (st, body)
        sid = h["Location"].rsplit("/", 1)[1]
        assert [s["id"] for s in self.live()["sessions"]] == [sid]
        st, body, _ = self.admin.request("PATCH", "/api/v1/users/night", {"role": "officer"})
        assert st == 200, (st, body)
        t0 = time.monotonic()
        wait_for("the revoked viewing to end", lambda: self.live()["viewers"] == 0, 10)
        log("revoked viewing ended %.1f s after the change" % (time.monotonic() - t0))
        wait_for("its end row", lambda: any(
            "reason=revoked" in r.get("detail", "") and sid in r.get("detail", "")
            for r in self.audit_rows()), 10)

    def deferred(self):
        """vigil_http_deferred: requests whose work runs off the HTTP threads."""
        metrics = urllib.request.urlopen(self.base + "/metrics", timeout=10).read().decode()
        m = re.search(r"^vigil_http_deferred (\d+)$", metrics, re.M)
        assert m, [l for l in metrics.splitlines() if "http" in l][:5]
        return int(m.group(1))

    def test_h_offers_in_flight_leave_the_api_answering(self):
        """While webrtcbin gathers ICE candidates (here held up to vigild's 5 s by
        a STUN server that stopped answering) the offers' connections are
        suspended, not holding HTTP threads: more requests than the server
        has threads are answered meanwhile, and the offers are answered after."""
        offer = self.browser_offer()
        st, h, body = self.post_offer("hall", offer)  # with the STUN server answering
        assert st == 201, (st, body)
        assert self.delete(h["Location"]) == 200
        assert self.stun.answered > 0, "vigild never asked the STUN server"
        results = []
        tokens = (self.live_token, self.live_token, self.admin_token)  # max_viewers = 3
        threads = [threading.Thread(target=lambda t=t: results.append(self.post_offer(
            "hall", offer, headers={"Authorization": "Bearer " + t}))) for t in tokens]
        self.stun.silent = True
        try:
            for t in threads:
                t.start()
            wait_for("the offers being answered off the HTTP threads",
                     lambda: self.deferred() == len(tokens), 10)
            for i in range(3 * os.cpu_count()):  # vigild runs 2 HTTP threads a CPU, at least 4
                status, body, _ = self.admin.request("GET", "/api/v1/sources/hall")
                assert status == 200, (status, body)
                self.live()
            # still in flight after all that: those answers did not wait for them
            assert self.deferred() == len(tokens) and not results, results
        finally:
            self.stun.silent = False
            for t in threads:
                t.join(60)
        try:
            assert sorted(r[0] for r in results) == [201] * len(tokens), \
                [(r[0], r[2][:200]) for r in results]
            assert all("a=candidate:" in r[2] for r in results), results
            wait_for("nothing deferred", lambda: self.deferred() == 0, 10)
        finally:
            for _, h, _ in results:  # an admin may end anyone's
                if "Location" in h:
                    self.delete(h["Location"], self.admin_token)
        wait_for("no live viewers", lambda: self.live()["viewers"] == 0, 10)

    def mp4_flowing(self, source):
        """True when live.mp4 of source gives fragments now (read briefly)."""
        status, _, data = self.fetch_mp4(source, seconds=1.5)
        return status == 200 and data.count(b"moof") >= 2

    def test_i_webrtc_after_a_camera_reconnect(self):
        """A reconnect's timestamps start again near 0 (libav's RTSP ones): that
        is not the camera reordering pictures (B-frames), and WebRTC is still
        offered for its H.264 after it."""
        offer = self.browser_offer()
        st, h, body = self.post_offer("flaky", offer)
        assert st == 201, (st, body)
        assert self.delete(h["Location"]) == 200
        plays = self.cam.lines.count("PLAY /flaky")
        self.cam.signal(signal.SIGUSR1, "FLAKY down")
        self.cam.signal(signal.SIGUSR2, "FLAKY up")
        wait_for("vigild back on /flaky", lambda: self.cam.lines.count("PLAY /flaky") > plays, 30)
        # the new connection's packets went through live view
        wait_for("flaky's live.mp4 giving fragments", lambda: self.mp4_flowing("flaky"), 30)
        wait_for("no live viewers", lambda: self.live()["viewers"] == 0, 10)
        live = self.source("flaky")["live"]
        assert live["webrtc"] is True and live["reason"] is None, live
        st, h, body = self.post_offer("flaky", offer)
        assert st == 201, (st, body)
        assert self.delete(h["Location"]) == 200
        wait_for("no live viewers", lambda: self.live()["viewers"] == 0, 10)

    def test_j_timestamps_jumping_back(self):
        """A camera whose RTP timestamps go 30 s back mid-connection (an encoder
        restart; camsim's SIGHUP): live view continues its timeline, so an MSE
        viewer reading across the jump keeps getting fragments (a timeline
        pinned to its last time would refuse every packet for 30 s), and the
        jump is not taken for B-frames (WebRTC still offered)."""
        c = http.client.HTTPConnection("127.0.0.1", self.v.http_port, timeout=10)
        try:
            c.request("GET", "/api/v1/sources/jumpy/live.mp4",
                      headers={"Authorization": "Bearer " + self.live_token})
            r = c.getresponse()
            assert r.status == 200, (r.status, r.read()[:300])
            got = {"before": b"", "after": b""}

            def fragments(key, n):
                got[key] += r.read1(65536)
                return got[key].count(b"moof") >= n
            wait_for("fragments before the jump", lambda: fragments("before", 2), 20)
            self.cam.signal(signal.SIGHUP, "JUMP back")
            # about 4 a second go on; at most a second's worth was on its way
            wait_for("fragments after the jump", lambda: fragments("after", 12), 20)
        finally:
            c.close()
        path = os.path.join(self.tmp, "jumpy.mp4")
        with open(path, "wb") as f:
            f.write(got["before"] + got["after"])
        p = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                            "packet=dts", "-of", "csv=p=0", path],
                           capture_output=True, text=True, timeout=60)
        dts = [int(x) for x in p.stdout.split() if x.strip().lstrip("-").isdigit()]
        assert len(dts) >= 25 and all(b > a for a, b in zip(dts, dts[1:])), (len(dts), p.stderr)
        wait_for("no live viewers", lambda: self.live()["viewers"] == 0, 10)
        live = self.source("jumpy")["live"]
        assert live["webrtc"] is True and live["reason"] is None, live
        st, h, body = self.post_offer("jumpy", self.browser_offer())
        assert st == 201, (st, body)
        assert self.delete(h["Location"]) == 200
        wait_for("no live viewers", lambda: self.live()["viewers"] == 0, 10)

    def test_z_recording_went_on(self):
        now = {n: len(self.v.segments(n)) for n, _, _ in SOURCES}
        for n, _, _ in SOURCES:
            assert now[n] > self.segments_at_start[n], (n, self.segments_at_start, now)

    # ---- the fMP4 fallback ----

    def fetch_mp4(self, source, seconds=3.0, token=None):
        """Reads live.mp4 for a few seconds; returns (status, headers, bytes)."""
        c = http.client.HTTPConnection("127.0.0.1", self.v.http_port, timeout=10)
        c.request("GET", "/api/v1/sources/%s/live.mp4" % source,
                  headers={"Authorization": "Bearer " + (token or self.live_token)})
        r = c.getresponse()
        data = b""
        deadline = time.monotonic() + seconds
        while r.status == 200 and time.monotonic() < deadline:
            chunk = r.read1(65536)
            if not chunk:
                break
            data += chunk
        if r.status != 200:
            data = r.read()
        headers = dict(r.getheaders())
        c.close()
        return r.status, headers, data

    def check_mp4(self, source, codecs_prefix, video_codec, audio_codec=None):
        status, headers, data = self.fetch_mp4(source)
        assert status == 200, (status, data[:300])
        assert headers.get("Content-Type", "").endswith("/mp4"), headers
        codecs = headers.get("X-Vigil-Codecs", "")
        assert codecs.startswith(codecs_prefix), codecs
        assert headers.get("Transfer-Encoding") == "chunked", headers
        # an init segment (ftyp, moov) and then fragments (moof, mdat)
        assert data[4:8] == b"ftyp" and b"moov" in data[:4096], data[:64]
        assert data.count(b"moof") >= 4, data.count(b"moof")
        path = os.path.join(self.tmp, "%s.mp4" % source)
        with open(path, "wb") as f:
            f.write(data)
        info = ffprobe(path)
        kinds = {(s["codec_type"], s["codec_name"]) for s in info["streams"]}
        assert ("video", video_codec) in kinds, kinds
        if audio_codec:
            assert ("audio", audio_codec) in kinds, kinds
        p = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0",
                            "-show_entries", "stream=nb_read_frames", "-of", "csv=p=0", path],
                           capture_output=True, text=True, timeout=60)
        frames = int(p.stdout.strip().split(",")[0] or 0)
        assert frames >= 25, (frames, p.stderr[-500:])
        return codecs

    def test_b_live_mp4_h265_and_bframes(self):
        log("codecs: %s" % self.check_mp4("hevc", "hvc1.", "hevc"))
        log("codecs: %s" % self.check_mp4("bframes", "avc1.4d", "h264"))
        wait_for("no live viewers", lambda: self.live()["viewers"] == 0, 10)

    def test_c_live_mp4_g711_as_flac(self):
        codecs = self.check_mp4("gate", "avc1.", "h264", "flac")
        assert codecs.endswith(",flac"), codecs


def main():
    return integration.suite_main(Suite, "live")


if __name__ == "__main__":
    sys.exit(main())
