#!/usr/bin/env python3
"""Integration tests of evidence export (README "Evidence export"): one camera
simulator and one vigild shared by every test (2 s segments), real HTTP, a
real index, and independent checkers: Debian's minisign, sha256sum, ffprobe
and ffmpeg. A bundle is made over the API, polled until done, downloaded
(whole and by Range), checked by `vigilctl verify-export`, `minisign -V` and
`sha256sum -c`, its media probed and its WAV compared byte for byte with the
stored G.711; tampered bundles are refused naming the mismatch; holds,
permissions, deletion, keep_days cleanup, a stop in the middle of a job, bad
input and the audit rows are checked too.

Ends with "N passed, N failed".
"""
import argparse
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import zipfile

import integration
from integration import Camsim, ffprobe, log, parse_time, wait_for
from integration_web import PASSWORD, Client, WebVigil, free_port, wait_http

SLOW_CASE = "SLOW-CASE"


def http(client, method, path, body=None, headers=None):
    """Like Client.request, with extra headers and the raw answer."""
    c = client.conn()
    h = dict(headers or {})
    data = None
    if body is not None:
        data = body if isinstance(body, (bytes, str)) else json.dumps(body)
        h["Content-Type"] = "application/json"
    if client.cookie:
        h["Cookie"] = client.cookie
        h["X-Requested-With"] = "vigil"
    c.request(method, path, body=data, headers=h)
    r = c.getresponse()
    raw = r.read()
    c.close()
    return r.status, raw, r


class Suite:
    def __init__(self, tmp):
        self.tmp = tmp
        self.cam = Camsim()
        self.port = free_port()
        self.clock_file = os.path.join(tmp, "export-clock")
        with open(self.clock_file, "w") as f:
            f.write("0\n")
        os.environ["VIGIL_TEST_EXPORT_CLOCK"] = self.clock_file
        os.environ["VIGIL_TEST_EXPORT_CLEANUP_MS"] = "200"
        os.environ["VIGIL_TEST_EXPORT_SLOW_CASE"] = SLOW_CASE
        self.v = WebVigil(os.path.join(tmp, "v"),
                          [("cam", self.cam.url("h264"), "video"),
                           ("camg", self.cam.url("cam-g711"), "video"),
                           ("line", self.cam.url("line-pcma"), "audio")],
                          "http_listen = 127.0.0.1:%d\n" % self.port,
                          extra="[exports]\nkeep_days = 1\n")
        self.v.add_user("admin", "admin")
        self.v.add_user("inv", "investigator")
        self.v.add_user("inv2", "investigator")
        self.v.add_user("narrow", "investigator", sources="cam")
        self.v.add_user("officer", "officer")
        self.v.start()
        wait_http(self.port)
        self.c = {}
        for u in ("admin", "inv", "inv2", "narrow", "officer"):
            self.c[u] = Client(self.port)
            self.c[u].login(u)
        wait_for("three segments of every source",
                 lambda: all(len(self.v.segments(s)) >= 4 for s in ("cam", "camg", "line")), 60)
        self.exports_dir = os.path.join(self.v.data, "exports")
        self.done = None  # (id, zip bytes, range) of the first finished export

    def close(self):
        self.v.stop()
        self.cam.stop()

    # -- helpers
    def post(self, user, body):
        return self.c[user].request("POST", "/api/v1/exports", body)

    def wait_done(self, user, eid, states=("done",)):
        def finished():
            st, body, _ = self.c[user].request("GET", "/api/v1/exports/%d" % eid)
            assert st == 200, (st, body)
            assert body["state"] != "failed" or "failed" in states, body
            return body if body["state"] in states else None
        return wait_for("export %d %s" % (eid, "/".join(states)), finished, 60)

    def line_range(self):
        """Two whole segments of the call line: the WAV must be exactly their audio.
        Listed times have milliseconds, the index microseconds: from is put 1 ms
        after the listed start so the segment before does not overlap it."""
        segs = self.v.segments("line")
        return "%.3f" % (parse_time(segs[1]["start"]) + 0.001), segs[2]["end"], segs[1:3]

    def ctl_verify(self, path, *extra):
        return subprocess.run([os.path.join(integration.BUILD, "vigilctl"), "verify-export", path]
                              + list(extra), capture_output=True, text=True, timeout=60)

    def bundle(self):
        """The first finished export, made once and shared."""
        if self.done:
            return self.done
        frm, to, _ = self.line_range()
        st, body, _ = self.post("inv", {"sources": ["cam", "camg", "line"], "from": frm, "to": to,
                                        "case": "C-2026-117 жалоба", "reason": "complaint 117"})
        assert st == 202, (st, body)
        eid = body["id"]
        info = self.wait_done("inv", eid)
        assert info["progress"] == 1 and info["bytes"] > 0 and info["sha256"], info
        st, raw, r = http(self.c["inv"], "GET", "/api/v1/exports/%d/download" % eid)
        assert st == 200, (st, raw[:200])
        assert r.getheader("Content-Type") == "application/zip"
        assert int(r.getheader("Content-Length")) == len(raw) == info["bytes"]
        disp = r.getheader("Content-Disposition")
        assert "C-2026-117" in disp and "attachment" in disp, disp
        self.done = (eid, raw, frm, to)
        return self.done

    # -- tests
    def test_bundle_verifies_with_vigilctl_minisign_and_sha256sum(self):
        eid, raw, frm, to = self.bundle()
        path = os.path.join(self.tmp, "b.zip")
        with open(path, "wb") as f:
            f.write(raw)
        p = self.ctl_verify(path)
        assert p.returncode == 0, p.stdout + p.stderr
        pub = self.v.ctl("key", "show").stdout
        pubfile = os.path.join(self.tmp, "appliance.pub")
        with open(pubfile, "w") as f:
            f.write(pub)
        p = self.ctl_verify(path, "--pubkey", pubfile)
        assert p.returncode == 0, p.stdout + p.stderr
        d = os.path.join(self.tmp, "unpacked")
        zipfile.ZipFile(path).extractall(d)
        names = sorted(os.listdir(d))
        assert names == sorted(["cam.mp4", "camg.mov", "line.wav", "manifest.json",
                                "manifest.json.minisig", "vigil-appliance.pub", "VERIFY.txt",
                                "SHA256SUMS"]), names
        p = subprocess.run(["minisign", "-Vm", "manifest.json", "-p", "vigil-appliance.pub"],
                           cwd=d, capture_output=True, text=True, timeout=30)
        assert p.returncode == 0 and "verified" in p.stdout, p.stdout + p.stderr
        p = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=d, capture_output=True,
                           text=True, timeout=30)
        assert p.returncode == 0 and p.stdout.count(": OK") == 5, p.stdout + p.stderr
        with open(os.path.join(d, "manifest.json")) as f:
            m = json.load(f)
        assert m["case"] == "C-2026-117 жалоба" and m["reason"] == "complaint 117", m
        assert m["exporter"] == "user:inv" and m["export_id"] == eid, m
        assert len(m["appliance_id"]) == 32 and m["vigil_version"], m
        with open(os.path.join(d, "VERIFY.txt"), encoding="utf-8") as f:
            text = f.read()
        assert "minisign -Vm manifest.json -p vigil-appliance.pub" in text and "Проверка" in text
        # every original segment is named with the index's own sha256
        for s in m["sources"]:
            indexed = {g["id"]: g["sha256"] for g in self.v.segments(s["name"])}
            assert s["segments"], s
            for g in s["segments"]:
                assert indexed[g["id"]] == g["sha256"], (s["name"], g)
        self.unpacked = d

    def test_media_codecs_durations_and_wav_bytes(self):
        eid, raw, frm, to = self.bundle()
        d = os.path.join(self.tmp, "media")
        zipfile.ZipFile(io.BytesIO(raw)).extractall(d)
        want = parse_time(to) - float(frm)
        codecs = {"cam.mp4": ["h264"], "camg.mov": ["h264", "pcm_alaw"], "line.wav": ["pcm_alaw"]}
        for name, expect in codecs.items():
            info = integration.ffprobe(os.path.join(d, name))
            got = sorted(s["codec_name"] for s in info["streams"])
            assert got == sorted(expect), (name, got)
            dur = float(info["format"]["duration"])
            # video starts at the keyframe at or before from: up to a GOP more
            assert want - 0.5 <= dur <= want + integration.GOP_S + 0.5, (name, dur, want)
        # The WAV's samples are the stored A-law bytes of those two segments.
        _, _, segs = self.line_range()
        stored = b""
        for g in segs:
            p = subprocess.run(["ffmpeg", "-v", "error", "-i",
                                os.path.join(self.v.data, g["path"]), "-map", "0:a", "-c", "copy",
                                "-f", "alaw", "-"], capture_output=True, timeout=60)
            assert p.returncode == 0, p.stderr
            stored += p.stdout
        p = subprocess.run(["ffmpeg", "-v", "error", "-i", os.path.join(d, "line.wav"), "-c",
                            "copy", "-f", "alaw", "-"], capture_output=True, timeout=60)
        assert p.returncode == 0, p.stderr
        got = p.stdout
        assert len(stored) > 8000 and got == stored, (
            len(got), len(stored), got[160:] == stored, got[:-160] == stored, stored in got,
            [(g["start"], g["end"]) for g in segs], frm, to)

    def test_download_range(self):
        eid, raw, _, _ = self.bundle()
        st, part, r = http(self.c["inv"], "GET", "/api/v1/exports/%d/download" % eid,
                           headers={"Range": "bytes=100-1099"})
        assert st == 206 and part == raw[100:1100], st
        assert r.getheader("Content-Range") == "bytes 100-1099/%d" % len(raw)
        st, _, _ = http(self.c["inv"], "GET", "/api/v1/exports/%d/download" % eid,
                        headers={"Range": "bytes=%d-" % (len(raw) + 10)})
        assert st == 416, st

    def tamper(self, name, change=None, drop=None, add=None, replace=None):
        """A copy of the bundle with one change, re-zipped (so zip CRCs are right)."""
        _, raw, _, _ = self.bundle()
        src = zipfile.ZipFile(io.BytesIO(raw))
        path = os.path.join(self.tmp, "t-%s.zip" % name)
        with zipfile.ZipFile(path, "w") as out:
            for info in src.infolist():
                data = src.read(info.filename)
                if info.filename == drop:
                    continue
                if change and info.filename == change:
                    data = bytearray(data)
                    data[len(data) // 2] ^= 0x01
                    data = bytes(data)
                if replace and info.filename in replace:
                    data = replace[info.filename]
                out.writestr(info.filename, data)
            if add:
                out.writestr(add, b"planted")
        return path

    def test_tampered_bundles_refused(self):
        cases = [
            (dict(change="cam.mp4"), "cam.mp4"),
            (dict(change="line.wav"), "line.wav"),
            (dict(change="manifest.json"), "signature"),
            (dict(drop="camg.mov"), "camg.mov is missing"),
            (dict(drop="manifest.json.minisig"), "manifest.json.minisig is missing"),
            (dict(add="extra.mp4"), "unexpected file in the bundle: extra.mp4"),
            (dict(change="VERIFY.txt"), "VERIFY.txt"),
            (dict(change="SHA256SUMS"), "SHA256SUMS"),
        ]
        for i, (kw, expect) in enumerate(cases):
            p = self.ctl_verify(self.tamper("c%d" % i, **kw))
            assert p.returncode == 1 and expect in p.stdout, (kw, p.stdout, p.stderr)
        # A signature by another key: minisign makes a key and signs the manifest.
        kd = os.path.join(self.tmp, "otherkey")
        os.makedirs(kd, exist_ok=True)
        subprocess.run(["minisign", "-G", "-W", "-f", "-p", os.path.join(kd, "k.pub"), "-s",
                        os.path.join(kd, "k.sec")], check=True, capture_output=True, timeout=30)
        _, raw, _, _ = self.bundle()
        man = zipfile.ZipFile(io.BytesIO(raw)).read("manifest.json")
        with open(os.path.join(kd, "manifest.json"), "wb") as f:
            f.write(man)
        subprocess.run(["minisign", "-S", "-s", os.path.join(kd, "k.sec"), "-m",
                        os.path.join(kd, "manifest.json")], check=True, capture_output=True,
                       timeout=30)
        with open(os.path.join(kd, "manifest.json.minisig"), "rb") as f:
            forged = f.read()
        with open(os.path.join(kd, "k.pub"), "rb") as f:
            other_pub = f.read()
        p = self.ctl_verify(self.tamper("sig", replace={"manifest.json.minisig": forged}))
        assert p.returncode == 1 and "another key" in p.stdout, p.stdout
        # The forger swaps the public key too: only a key kept apart catches it.
        both = self.tamper("both", replace={"manifest.json.minisig": forged,
                                            "vigil-appliance.pub": other_pub})
        pubfile = os.path.join(self.tmp, "appliance2.pub")
        with open(pubfile, "w") as f:
            f.write(self.v.ctl("key", "show").stdout)
        p = self.ctl_verify(both, "--pubkey", pubfile)
        assert p.returncode == 1 and "another key" in p.stdout, p.stdout
        p = self.ctl_verify(os.path.join(self.tmp, "nonexistent.zip"))
        assert p.returncode == 1, p.stdout

    def test_hold_true_creates_the_hold(self):
        frm, to, _ = self.line_range()
        st, body, _ = self.post("inv", {"sources": ["camg"], "from": frm, "to": to,
                                        "case": "HOLD-7", "reason": "keep it", "hold": True})
        assert st == 202 and body["hold_id"], (st, body)
        st, holds, _ = self.c["inv"].request("GET", "/api/v1/holds")
        h = [x for x in holds["holds"] if x["id"] == body["hold_id"]]
        assert h and h[0]["case"] == "HOLD-7" and h[0]["sources"] == ["camg"], holds
        info = self.wait_done("inv", body["id"])
        assert info["hold_id"] == body["hold_id"], info
        st, rows, _ = self.c["admin"].request("GET", "/api/v1/audit?action=hold.create")
        assert any("HOLD-7" in r["detail"] for r in rows["rows"]), rows

    def test_owner_admin_and_others(self):
        eid, _, _, _ = self.bundle()
        assert self.c["inv2"].request("GET", "/api/v1/exports/%d" % eid)[0] == 404
        assert self.c["inv2"].request("DELETE", "/api/v1/exports/%d" % eid)[0] == 404
        assert http(self.c["inv2"], "GET", "/api/v1/exports/%d/download" % eid)[0] == 404
        st, mine, _ = self.c["inv2"].request("GET", "/api/v1/exports")
        assert all(e["owner"] == "user:inv2" for e in mine["exports"]), mine
        st, everyone, _ = self.c["officer"].request("GET", "/api/v1/exports")
        assert st == 200 and any(e["id"] == eid for e in everyone["exports"]), everyone
        assert self.c["officer"].request("DELETE", "/api/v1/exports/%d" % eid)[0] == 403
        assert self.c["admin"].request("GET", "/api/v1/exports/%d" % eid)[0] == 200
        # a second export, deleted by its owner: gone from the disk too
        frm, to, _ = self.line_range()
        st, body, _ = self.post("inv2", {"sources": ["cam"], "from": frm, "to": to, "case": "D-1",
                                         "reason": "to delete"})
        assert st == 202, body
        self.wait_done("inv2", body["id"])
        zpath = os.path.join(self.exports_dir, "%d.zip" % body["id"])
        assert os.path.exists(zpath)
        st, _, _ = self.c["inv2"].request("DELETE", "/api/v1/exports/%d" % body["id"])
        assert st == 204, st
        assert not os.path.exists(zpath)
        assert self.c["inv2"].request("GET", "/api/v1/exports/%d" % body["id"])[0] == 404
        st, rows, _ = self.c["admin"].request("GET", "/api/v1/audit?action=export.delete")
        assert any(r["object"] == "export:%d" % body["id"] and r["actor"] == "user:inv2"
                   and r["result"] == "ok" for r in rows["rows"]), rows

    def test_bad_input_400_invisible_404_empty_422(self):
        frm, to, _ = self.line_range()
        good = {"sources": ["cam"], "from": frm, "to": to, "case": "B-1", "reason": "r"}

        def with_(**kw):
            b = dict(good)
            b.update(kw)
            return {k: v for k, v in b.items() if v is not None}
        bad = [with_(sources=[]), with_(sources=["cam"] * 17), with_(sources=["cam", "cam"]),
               with_(**{"from": to, "to": frm}), with_(to="2030-01-01T00:00:00Z"),
               with_(case=None), with_(reason=None), with_(case=""), with_(case="x" * 200),
               with_(reason="y" * 300), with_(case="a\nb"), with_(hold="yes"),
               with_(colour="red"), with_(sources="cam"), with_(**{"from": "yesterday"})]
        for b in bad:
            st, body, _ = self.post("inv", b)
            assert st == 400 and body["error"]["code"], (b, st, body)
        st, _, _ = http(self.c["inv"], "POST", "/api/v1/exports",
                        b'{"sources":["cam"],"from":"%s","to":"%s","case":"\xff\xfe","reason":"r"}'
                        % (frm.encode(), to.encode()))
        assert st == 400, st
        st, body, _ = self.post("narrow", with_(sources=["cam", "line"]))
        assert st == 404, (st, body)
        st, body, _ = self.post("inv", with_(sources=["nosuch"]))
        assert st == 404, (st, body)
        st, body, _ = self.post("inv", with_(**{"from": "2001-01-01T00:00:00Z",
                                                "to": "2001-01-01T01:00:00Z"}))
        assert st == 422 and body["error"]["code"] == "no_recording", (st, body)
        # a role without the export permission
        st, _, _ = self.post("officer", good)
        assert st == 403, st
        st, _, _ = self.c["inv"].request("GET", "/api/v1/exports/abc")
        assert st == 404, st

    def test_audit_rows(self):
        eid, _, frm, to = self.bundle()
        st, rows, _ = self.c["admin"].request("GET", "/api/v1/audit?action=export")
        mine = [r for r in rows["rows"] if "id=%d " % eid in r["detail"]]
        assert len(mine) == 1, rows
        r = mine[0]
        assert r["actor"] == "user:inv" and r["object"] == "sources:cam,camg,line", r
        assert "C-2026-117" in r["detail"] and "complaint 117" in r["detail"], r
        assert abs(parse_time(r["from"]) - float(frm)) < 0.002, r
        st, rows, _ = self.c["admin"].request("GET", "/api/v1/audit?action=export.download")
        assert any(x["object"] == "export:%d" % eid for x in rows["rows"]), rows

    def test_storage_shows_export_bytes(self):
        eid, raw, _, _ = self.bundle()
        st, body, _ = self.c["admin"].request("GET", "/api/v1/storage")
        assert st == 200 and body["exports_bytes"] >= len(raw), body

    def test_queue_full_503_then_cancelled(self):
        frm, to, _ = self.line_range()
        ids = []
        for i in range(12):
            st, body, r = self.post("inv", {"sources": ["cam", "camg", "line"], "from": frm,
                                            "to": to, "case": SLOW_CASE, "reason": "q%d" % i})
            if st == 503:
                assert r.getheader("Retry-After"), r.getheaders()
                break
            assert st == 202, (st, body)
            ids.append(body["id"])
        else:
            raise AssertionError("the queue never filled")
        assert len(ids) <= 9, ids
        for eid in ids:
            assert self.c["inv"].request("DELETE", "/api/v1/exports/%d" % eid)[0] == 204
        # nothing of the cancelled jobs stays in the exports directory
        wait_for("the running job to stop and clean up",
                 lambda: not [n for n in os.listdir(self.exports_dir)
                              if n.startswith(".") or n in ("%d.zip" % i for i in ids)], 30)

    def test_restart_mid_job_leaves_failed_and_no_strays(self):
        frm, to, _ = self.line_range()
        for sig in (signal.SIGTERM, signal.SIGKILL):
            st, body, _ = self.post("inv", {"sources": ["cam", "camg", "line"], "from": frm,
                                            "to": to, "case": SLOW_CASE, "reason": "restart"})
            assert st == 202, body
            eid = body["id"]
            self.wait_done("inv", eid, states=("running",))
            # progress moves while media is written (the slow case crawls)
            wait_for("progress between 0 and 1", lambda: 0 < self.c["inv"].request(
                "GET", "/api/v1/exports/%d" % eid)[1]["progress"] < 1, 30)
            wait_for("a temporary file of the job",
                     lambda: [n for n in os.listdir(self.exports_dir) if n.startswith(".")], 30)
            rc, _ = self.v.stop(sig)
            assert rc != "hung", rc
            if sig == signal.SIGTERM:
                # stopped cleanly: no partial file left even before the next start
                assert not [n for n in os.listdir(self.exports_dir) if n.startswith(".")], \
                    os.listdir(self.exports_dir)
            self.v.start()
            wait_http(self.port)
            info = self.wait_done("inv", eid, states=("failed",))
            assert info["error"] == "interrupted", info
            left = os.listdir(self.exports_dir)
            assert not [n for n in left if n.startswith(".") or n == "%d.zip" % eid], left

    def test_x_zip_without_a_row_goes_between_jobs(self):
        """A bundle whose row is gone (its removal failed, or a delete raced
        the job's end) is removed by the exporter's next cleanup pass, not
        only at the next start; a done export's zip stays."""
        eid, _, _, _ = self.bundle()
        stray = os.path.join(self.exports_dir, "987654.zip")
        with open(stray, "wb") as f:
            f.write(b"PK\x05\x06" + b"\0" * 18)
        wait_for("the zip without a row removed", lambda: not os.path.exists(stray), 30)
        assert os.path.exists(os.path.join(self.exports_dir, "%d.zip" % eid))
        assert "leftover file(s) of deleted exports" in self.v.log_text()

    def test_y_read_error_fails_the_export_never_shortens_it(self):
        """A read error anywhere in a segment fails the export and leaves no
        file: vigilctl export under the faultfs shim, failing the reads of
        the middle segment from its first read on, one more read let through
        each time, until the export no longer reaches a failing read."""
        segs = self.v.segments("cam")[1:4]
        frm, to = "%.3f" % (parse_time(segs[0]["start"]) + 0.001), segs[2]["end"]
        bad = segs[1]["path"]
        rules, fired = os.path.join(self.tmp, "read-faults"), os.path.join(self.tmp, "read-fired")
        env = dict(os.environ, LD_PRELOAD=os.path.abspath(os.path.join(integration.BUILD,
                                                                         "faultfs.so")),
                   VIGIL_FAULTS_FILE=rules, VIGIL_FAULTS_LOG=fired)
        env["ASAN_OPTIONS"] = (env.get("ASAN_OPTIONS", "") + ":verify_asan_link_order=0")
        outdir = os.path.join(self.tmp, "read-out")
        os.mkdir(outdir)
        out = os.path.join(outdir, "cam.mp4")
        def packets():
            return [x["nb_read_packets"] for x in ffprobe(out, "stream=nb_read_packets")["streams"]]
        with open(rules, "w") as f:
            f.write("# none\n")
        p = subprocess.run([os.path.join(integration.BUILD, "vigilctl"), "-c", self.v.conf,
                            "export", "cam", "--from", frm, "--to", to, "-o", out],
                           capture_output=True, text=True, timeout=60, env=env)
        assert p.returncode == 0, p.stderr
        whole = packets()
        os.unlink(out)
        mid_file = 0
        for skip in range(0, 400):
            with open(rules, "w") as f:
                f.write("read %s EIO skip=%d\n" % (bad, skip))
            if os.path.exists(fired):
                os.unlink(fired)
            p = subprocess.run([os.path.join(integration.BUILD, "vigilctl"), "-c", self.v.conf,
                                "export", "cam", "--from", frm, "--to", to, "-o", out],
                               capture_output=True, text=True, timeout=60, env=env)
            hit = os.path.exists(fired) and os.path.getsize(fired) > 0
            if p.returncode == 0:
                # only an export that never met a failing read may succeed
                assert not hit, (skip, open(fired).read())
                break
            assert hit and bad in p.stderr, (skip, p.returncode, p.stderr)
            assert os.listdir(outdir) == [], (skip, os.listdir(outdir))
            mid_file += "Input/output error" in p.stderr
        else:
            raise AssertionError("the export still failed with 400 reads let through")
        assert skip > 0 and mid_file, (skip, mid_file)
        assert packets() == whole, (packets(), whole)

    def test_y_truncated_segment_fails_the_bundle(self):
        """A segment shorter on disk than in the index fails the export job,
        naming the file, instead of signing a bundle that lacks its end."""
        segs = self.v.segments("cam")[1:4]
        path = os.path.join(self.v.data, segs[1]["path"])
        with open(path, "rb") as f:
            keep = f.read()
        try:
            with open(path, "r+b") as f:
                f.truncate(len(keep) * 2 // 3)
            st, body, _ = self.post("inv", {"sources": ["cam"], "from": "%.3f" % (
                parse_time(segs[0]["start"]) + 0.001), "to": segs[2]["end"],
                "case": "T-1", "reason": "truncated"})
            assert st == 202, (st, body)
            info = self.wait_done("inv", body["id"], states=("failed",))
            assert segs[1]["path"] in info["error"] and "in the index" in info["error"], info
            assert not [n for n in os.listdir(self.exports_dir)
                        if n.startswith(".") or n == "%d.zip" % body["id"]], \
                os.listdir(self.exports_dir)
        finally:
            with open(path, "wb") as f:
                f.write(keep)

    def test_zz_keep_days_cleanup_audited_as_system(self):
        eid, _, _, _ = self.bundle()
        zpath = os.path.join(self.exports_dir, "%d.zip" % eid)
        assert os.path.exists(zpath)
        with open(self.clock_file, "w") as f:
            f.write("%d\n" % (2 * 86400))
        try:
            wait_for("the expired export to go",
                     lambda: self.c["inv"].request("GET", "/api/v1/exports/%d" % eid)[0] == 404,
                     30)
        finally:
            with open(self.clock_file, "w") as f:
                f.write("0\n")
        assert not os.path.exists(zpath)
        st, rows, _ = self.c["admin"].request("GET", "/api/v1/audit?action=export.delete")
        assert any(r["object"] == "export:%d" % eid and r["actor"] == "system:exports"
                   and "keep_days=1" in r["detail"] for r in rows["rows"]), rows
        # the recordings themselves are untouched by the export cleanup
        assert len(self.v.segments("cam")) >= 4

    def test_zzz_clean_stop_and_no_sanitizer_reports(self):
        rc, took = self.v.stop()
        assert rc == 0, (rc, took)
        text = self.v.log_text()
        for bad in ("AddressSanitizer", "LeakSanitizer", "runtime error:"):
            assert bad not in text, text[text.find(bad) - 200:text.find(bad) + 2000]

    def test_vigilctl_export_bundle(self):
        frm, to, _ = self.line_range()
        out = os.path.join(self.tmp, "offline.zip")
        p = self.v.ctl("export", "--bundle", "--case", "OFF-1", "--reason", "offline", "cam",
                       "line", "--from", frm, "--to", to, "-o", out, check=False)
        assert p.returncode == 0, p.stdout + p.stderr
        p = self.ctl_verify(out)
        assert p.returncode == 0, p.stdout
        names = sorted(zipfile.ZipFile(out).namelist())
        assert "cam.mp4" in names and "line.wav" in names, names
        p = self.v.ctl("export", "--bundle", "--reason", "no case", "cam", "--from", frm, "--to",
                       to, "-o", out, check=False)
        assert p.returncode == 2, p
        rows = json.loads(self.v.ctl("audit", "list", "--json").stdout)
        assert any(r["action"] == "export" and "OFF-1" in r["detail"] for r in rows), rows[-3:]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("-k", default="")
    args = ap.parse_args()
    integration.BUILD = args.build
    passed = failed = 0
    with tempfile.TemporaryDirectory(prefix="vigil-export-") as tmp:
        suite = Suite(tmp)
        try:
            for name in sorted(n for n in dir(Suite) if n.startswith("test_") and args.k in n):
                t0 = time.monotonic()
                try:
                    getattr(suite, name)()
                    passed += 1
                    log("PASS %s (%.1f s)" % (name, time.monotonic() - t0))
                except Exception:
                    failed += 1
                    log("FAIL %s (%.1f s)\n%s" % (name, time.monotonic() - t0,
                                                  traceback.format_exc()))
        finally:
            suite.close()
    log("integration_export: %d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
