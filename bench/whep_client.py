#!/usr/bin/python3
"""whep_client: N WebRTC viewers in one process (GStreamer webrtcbin through
python3-gi), for bench/bench_live.py. Each viewer offers recvonly H.264
(packetization-mode 1, constrained baseline 42e01f, as Chromium does) and
PCMA, waits for ICE gathering to complete (non-trickle), POSTs the offer to
a WHEP URL and sets the answer; received RTP goes to a fakesink that counts
bytes. Both vigild and bench/live_peer are driven by this same client.

  whep_client.py URL N [--cookie C]   prints "UP n" once n viewers have
                                      received media, then "BYTES b" every
                                      second; on stdin EOF or SIGTERM
                                      DELETEs every session and exits.
"""
import argparse
import signal
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstSdp", "1.0")
gi.require_version("GstWebRTC", "1.0")
from gi.repository import GLib, Gst, GstSdp, GstWebRTC  # noqa: E402

VIDEO_CAPS = ("application/x-rtp,media=video,encoding-name=H264,clock-rate=90000,payload=96,"
              "packetization-mode=(string)1,profile-level-id=(string)42e01f")
AUDIO_CAPS = "application/x-rtp,media=audio,encoding-name=PCMA,clock-rate=8000,payload=8"


class Viewer:
    def __init__(self, url, headers):
        self.url, self.headers = url, headers
        self.location = None
        self.bytes = 0
        self.error = None
        self.pipe = Gst.Pipeline.new(None)
        self.webrtc = Gst.ElementFactory.make("webrtcbin", None)
        self.webrtc.set_property("bundle-policy", GstWebRTC.WebRTCBundlePolicy.MAX_BUNDLE)
        self.pipe.add(self.webrtc)
        for caps in (VIDEO_CAPS, AUDIO_CAPS):
            self.webrtc.emit("add-transceiver", GstWebRTC.WebRTCRTPTransceiverDirection.RECVONLY,
                             Gst.Caps.from_string(caps))
        self.webrtc.connect("pad-added", self.on_pad)
        self.webrtc.connect("notify::ice-gathering-state", self.on_gathering)
        self.pipe.set_state(Gst.State.PLAYING)
        promise = Gst.Promise.new()
        self.webrtc.emit("create-offer", None, promise)
        promise.wait()
        reply = promise.get_reply()  # owns the offer: keep it while the offer is used
        self.webrtc.emit("set-local-description", reply.get_value("offer"), None)

    def on_gathering(self, webrtc, _pspec):
        if webrtc.get_property("ice-gathering-state") != GstWebRTC.WebRTCICEGatheringState.COMPLETE:
            return
        # off the streaming thread: the POST blocks until the server answers
        threading.Thread(target=self.post, daemon=True).start()

    def post(self):
        sdp = self.webrtc.get_property("local-description").sdp.as_text()
        req = urllib.request.Request(self.url, data=sdp.encode(), method="POST",
                                     headers=dict(self.headers, **{"Content-Type": "application/sdp"}))
        try:
            with urllib.request.urlopen(req, timeout=45) as r:
                loc = r.headers["Location"]
                self.location = urllib.parse.urljoin(self.url, loc)
                answer = r.read().decode()
        except (urllib.error.URLError, OSError) as e:
            self.error = str(e)
            return
        _, msg = GstSdp.SDPMessage.new_from_text(answer)
        desc = GstWebRTC.WebRTCSessionDescription.new(GstWebRTC.WebRTCSDPType.ANSWER, msg)
        self.webrtc.emit("set-remote-description", desc, None)

    def on_pad(self, _webrtc, pad):
        sink = Gst.ElementFactory.make("fakesink", None)
        sink.set_property("sync", False)
        sink.set_property("signal-handoffs", True)
        sink.connect("handoff", self.on_buffer)
        self.pipe.add(sink)
        sink.sync_state_with_parent()
        pad.link(sink.get_static_pad("sink"))

    def on_buffer(self, _sink, buf, _pad):
        self.bytes += buf.get_size()

    def close(self):
        if self.location:
            req = urllib.request.Request(self.location, method="DELETE",
                                         headers=dict(self.headers))
            try:
                urllib.request.urlopen(req, timeout=10).close()
            except (urllib.error.URLError, OSError):
                pass
        self.pipe.set_state(Gst.State.NULL)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("n", type=int)
    ap.add_argument("--cookie")
    args = ap.parse_args()
    Gst.init(None)
    headers = {"X-Requested-With": "vigil"}
    if args.cookie:
        headers["Cookie"] = args.cookie
    loop = GLib.MainLoop()
    viewers = []
    stop = threading.Event()

    def stdin_eof():
        sys.stdin.read()
        stop.set()
    threading.Thread(target=stdin_eof, daemon=True).start()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    def report():
        up = sum(v.bytes > 0 for v in viewers)
        errors = [v.error for v in viewers if v.error]
        if errors:
            print("ERROR %s" % errors[0], flush=True)
        print("UP %d BYTES %d" % (up, sum(v.bytes for v in viewers)), flush=True)
        if stop.is_set():
            loop.quit()
            return False
        return True
    # viewers join one after another, as people opening a page would
    for _ in range(args.n):
        viewers.append(Viewer(args.url, headers))
        time.sleep(0.2)
    GLib.timeout_add(1000, report)
    loop.run()
    for v in viewers:
        v.close()


if __name__ == "__main__":
    main()
