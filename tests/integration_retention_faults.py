#!/usr/bin/env python3
"""Retention and reload under faults, against a real vigild, the camera
simulator and a real SQLite index: a segment file that cannot be deleted
(immutable), a source that fails to start on SIGHUP (the fault shim fails
its index open), a changed source's connections during a reload, and the
data_dir identity marker (a disk that is not mounted).

Reuses the helpers of tests/integration.py. Ends with "N passed, N failed".
"""
import argparse
import re
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.request

import integration
from integration import Camsim, Skip, Vigil, log, wait_for


class FaultVigil(integration.Faultfs, Vigil):
    """A vigild with the fault shim preloaded (rules in self.faults)."""

    def __init__(self, root, sources, **kw):
        super().__init__(root, sources, **kw)
        self.faultfs_init()

    def start(self):
        return super().start(env=self.faultfs_env())


def chattr(flag, path):
    p = subprocess.run(["chattr", flag, path], capture_output=True, text=True)
    return p.returncode == 0


def alarms(v):
    p = v.ctl("storage", "--json", check=False)
    if p.returncode != 0:
        return []
    return json.loads(p.stdout)["alarms"]


def alarm(v, kind):
    found = [a for a in alarms(v) if a["kind"] == kind]
    return found[0] if found else None


def set_config_line(v, section, key, value):
    """Appends key = value to [section] of v's config (a fresh section)."""
    with open(v.conf, "a") as f:
        f.write("[%s]\n%s = %s\n" % (section, key, value))


class Suite:
    def __init__(self, tmp):
        self.tmp = tmp
        self.cam = Camsim()

    def close(self):
        self.cam.stop()

    # -- one bad file never blocks the rest (DESIGN.md invariant 9)
    def test_undeletable_segment_is_skipped_and_reported(self):
        root = os.path.join(self.tmp, "immutable")
        v = Vigil(root, [("cam", self.cam.url("h264"), "video")], segment_seconds=2,
                  extra="[retention]\nsweep_seconds = 1\n").start()
        locked = None
        try:
            wait_for("5 segments", lambda: len(v.segments("cam")) >= 5, 60)
            assert v.stop()[0] == 0
            segs = v.segments("cam")
            oldest, second = segs[0], segs[1]
            locked = os.path.join(v.data, oldest["path"])
            if not chattr("+i", locked):
                locked = None
                raise Skip("chattr +i is not supported here (needs root on ext4 or similar)")
            # Less room than what is recorded: disk pressure must delete, and
            # the oldest file, first in line, cannot go.
            used = sum(s["bytes"] for s in segs)
            with open(v.conf) as f:
                conf = f.read()
            with open(v.conf, "w") as f:
                f.write(conf.replace("[retention]\n", "[retention]\ncapacity_bytes = %d\n"
                                     "reserve_percent = 10\n" % used))
            v.start()
            a = wait_for("delete_failed alarm", lambda: alarm(v, "delete_failed"), 30)
            assert oldest["path"] in a["message"], a
            # every other deletion proceeds: the next oldest goes, later sweeps too
            wait_for("the second oldest deleted", lambda: not os.path.exists(
                os.path.join(v.data, second["path"])), 30)
            ids = [s["id"] for s in v.segments("cam")]
            assert second["id"] not in ids and oldest["id"] not in ids
            assert os.path.exists(locked), "the immutable file is gone?"
            wait_for("recording goes on", lambda: v.segments("cam")[-1]["id"] > segs[-1]["id"], 30)
            p = v.ctl("check", check=False)
            assert p.returncode != 0 and "delete-failed %s" % oldest["path"] in p.stdout, p.stdout
            assert "cannot delete %s" % oldest["path"] in v.log_text()
            # a restart tries the pending deletion again, fails again, and starts anyway
            assert v.stop()[0] == 0
            n_fail = v.log_text().count("cannot delete %s" % oldest["path"])
            v.start()
            wait_for("restart retried the deletion", lambda: v.log_text().count(
                "cannot delete %s" % oldest["path"]) > n_fail, 30)
            wait_for("recording after the restart", lambda: "recording 1 source(s)" in
                     v.log_text().split("cannot delete %s" % oldest["path"])[-1], 30)
            assert v.proc.poll() is None, "vigild did not start"
            assert v.stop()[0] == 0
            # the obstacle gone, the next start finishes it and clears the alarm
            assert chattr("-i", locked)
            locked_path, locked = locked, None
            v.start()
            wait_for("the file deleted at last", lambda: not os.path.exists(locked_path), 30)
            wait_for("alarm cleared", lambda: alarm(v, "delete_failed") is None, 30)
        finally:
            if locked:
                chattr("-i", locked)
            v.stop()
        v.ctl("check")

    # -- reload is safe
    def test_reload_source_that_cannot_start(self):
        root = os.path.join(self.tmp, "reload-fail")
        sources = [("keep", self.cam.url("h264"), "video")]
        v = FaultVigil(root, sources).start()
        try:
            wait_for("keep recording", lambda: len(v.segments("keep")) >= 1, 30)
            with open(v.conf, "a") as f:
                f.write("[source added]\nurl = %s\nkind = audio\n" % self.cam.url("line-pcma"))
            # its recorder cannot open the index: the start fails
            v.set_faults("open index.db EIO\n")
            v.proc.send_signal(signal.SIGHUP)
            try:
                wait_for("the start failure", lambda: "source=added could not start" in v.log_text(), 20)
            except AssertionError:
                print(v.log_text()[-3000:]); raise
            wait_for("reload done", lambda: "configuration applied" in v.log_text(), 20)
            v.set_faults("")
            assert os.path.exists(v.fired), "the fault never fired"
            # status, metrics and the watchdog walk the sources: nothing crashes
            st = json.loads(v.ctl("status", "--json").stdout)
            names = [s["source"] for s in st["sources"]]
            assert names == ["keep"], names
            text = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % v.http_port,
                                          timeout=10).read().decode()
            assert 'source="keep"' in text
            n = len(v.segments("keep"))
            wait_for("keep still records", lambda: len(v.segments("keep")) > n, 20)
            assert v.proc.poll() is None, "vigild died"
            audit = json.loads(v.ctl("audit", "list", "--json").stdout)
            reloads = [a["result"] for a in audit if a["action"] == "config.reload"]
            assert reloads == ["partial"], reloads
            # the next reload starts it
            v.proc.send_signal(signal.SIGHUP)
            wait_for("added records after the next reload", lambda: v.segments("added"), 30)
        finally:
            rc, _ = v.stop()
        assert rc == 0, rc

    def test_reload_closes_old_connection_first(self):
        cam = Camsim()  # its own: every connection it sees is this vigild's
        root = os.path.join(self.tmp, "reload-order")
        v = Vigil(root, [("cam", cam.url("h264"), "video")]).start()
        try:
            wait_for("recording", lambda: len(v.segments("cam")) >= 1, 30)
            with open(v.conf) as f:
                conf = f.read()
            with open(v.conf, "w") as f:
                f.write(conf.replace(cam.url("h264"), cam.url("h264b")))
            v.proc.send_signal(signal.SIGHUP)
            wait_for("PLAY of the new mount", lambda: any(
                l.startswith("PLAY") and "h264b" in l for l in cam.lines), 30)
            wait_for("the new mount recorded", lambda: len(v.segments("cam")) >= 3, 30)
            # vigild's own order of events: the old connection is closed
            # before the new one is even tried (the simulator's log cannot
            # show this: it may see the close after the next connect when
            # both arrive in one poll of its loop)
            log_lines = v.log_text().splitlines()

            def first(pattern):
                for i, l in enumerate(log_lines):
                    if re.search(pattern, l):
                        return i
                return None
            closed_old = first(r"source=cam closed url=\S*/h264$")
            open_new = first(r"source=cam connecting url=\S*/h264b$")
            assert closed_old is not None and open_new is not None, (closed_old, open_new)
            assert closed_old < open_new, "the new connection was tried before the old closed"
            # and the simulator saw exactly the two, the first one closed
            events = [l for l in cam.lines if l.startswith("CLIENT ")]
            assert sum(e.startswith("CLIENT open") for e in events) == 2, events
            assert any(e.startswith("CLIENT close") for e in events), events
        finally:
            v.stop()
            cam.stop()

    # -- a wall-clock jump (the jump itself is driven through the injectable
    # clock in tests/test_retention.c; here, the alarm it leaves in the index)
    def test_clock_jump_alarm_suspends_age_until_accepted(self):
        root = os.path.join(self.tmp, "clock")
        v = Vigil(root, [("cam", self.cam.url("h264"), "video")],
                  extra="[retention]\nmin_days = 1\nkeep_days = 1\n").start()
        try:
            wait_for("recording", lambda: len(v.segments("cam")) >= 2, 30)
        finally:
            assert v.stop()[0] == 0
        first = v.segments("cam")[0]
        day = 86400 * 1000000
        db = sqlite3.connect(os.path.join(v.data, "index.db"))
        # the oldest segment is made two days old; a jumped vigild left its alarm
        db.execute("UPDATE segment SET start_us = start_us - 2 * ?1, end_us = end_us - 2 * ?1"
                   " WHERE id = ?2", (day, first["id"]))
        db.execute("INSERT INTO alarm(kind, severity, sources, message, raised_us)"
                   " VALUES ('clock_jump', 'critical', 'all', 'wall clock jumped', ?1)",
                   (int(time.time() * 1e6),))
        db.commit()
        db.close()
        p = v.ctl("sweep", "--json")
        assert json.loads(p.stdout)["deleted"] == 0, p.stdout
        assert first["id"] in [s["id"] for s in v.segments("cam")]
        p = v.ctl("clock", "accept")
        assert "wall clock accepted" in p.stdout, p.stdout
        assert alarm(v, "clock_jump") is None
        audit = json.loads(v.ctl("audit", "list", "--json").stdout)
        assert [a for a in audit if a["action"] == "clock.accept"], audit
        p = v.ctl("sweep", "--json")
        assert json.loads(p.stdout)["deleted"] == 1, p.stdout
        assert first["id"] not in [s["id"] for s in v.segments("cam")]
        assert "nothing to accept" in v.ctl("clock", "accept").stdout

    # -- a missing disk is not an empty archive
    def start_refused(self, v, needle, env=None):
        """vigild must exit non-zero at once, saying needle, writing nothing."""
        def listing():
            # SQLite's -wal/-shm come and go with any reader
            return sorted(n for n in os.listdir(v.data) if not n.startswith("index.db-")) \
                if os.path.isdir(v.data) else None
        before = listing()
        p = subprocess.run([os.path.join(integration.BUILD, "vigild"), "-c", v.conf],
                           capture_output=True, text=True, timeout=30, env=env)
        assert p.returncode != 0, "vigild started: %s" % p.stderr[-2000:]
        assert needle in p.stderr, "reason missing (%r): %s" % (needle, p.stderr[-2000:])
        after = listing()
        assert before == after, "a refused start wrote to data_dir: %s -> %s" % (before, after)

    def test_identity_marker(self):
        root = os.path.join(self.tmp, "identity")
        v = Vigil(root, [("cam", self.cam.url("h264"), "video")]).start()
        try:
            wait_for("recording", lambda: len(v.segments("cam")) >= 2, 30)
        finally:
            assert v.stop()[0] == 0
        marker = os.path.join(v.data, ".vigil-archive")
        with open(marker) as f:
            text = f.read()
        ident = [l.split()[1] for l in text.splitlines() if l.startswith("id ")][0]
        db = sqlite3.connect(os.path.join(v.data, "index.db"))
        assert db.execute("SELECT id FROM archive").fetchone()[0] == ident
        db.close()
        n = len(v.segments("cam"))
        # the marker gone (another disk with a copied index, a botched restore)
        os.rename(marker, marker + ".away")
        self.start_refused(v, ".vigil-archive is missing")
        assert len(v.segments("cam")) == n
        # a marker of another archive
        with open(marker, "w") as f:
            f.write("vigil-archive 1\nid %s\n" % ("0" * 32))
        self.start_refused(v, "do not go together")
        os.replace(marker + ".away", marker)
        # the index gone with the media still there
        os.rename(os.path.join(v.data, "index.db"), os.path.join(root, "index.db.away"))
        self.start_refused(v, "index.db of archive %s is missing" % ident)
        os.rename(os.path.join(root, "index.db.away"), os.path.join(v.data, "index.db"))
        # a directory with someone else's files in it
        other = Vigil(os.path.join(self.tmp, "identity-other"), [("cam", self.cam.url("h264"),
                                                                  "video")])
        os.makedirs(other.data)
        with open(os.path.join(other.data, "notes.txt"), "w") as f:
            f.write("not an archive\n")
        self.start_refused(other, "holds no vigil archive")
        # a first start cut after the marker, while the index was being
        # created: its journal reached the disk, the index did not
        cut = Vigil(os.path.join(self.tmp, "identity-cut"), [("cam", self.cam.url("h264"),
                                                              "video")])
        os.makedirs(cut.data)
        with open(os.path.join(cut.data, ".vigil-archive"), "w") as f:
            f.write("vigil-archive 1\nid %s\n" % ("ab" * 16))
        with open(os.path.join(cut.data, "index.db-journal"), "wb") as f:
            f.write(os.urandom(4096))
        cut.start()
        try:
            wait_for("the cut archive recording", lambda: len(cut.segments("cam")) >= 1, 30)
        finally:
            assert cut.stop()[0] == 0
        db = sqlite3.connect(os.path.join(cut.data, "index.db"))
        assert db.execute("SELECT id FROM archive").fetchone()[0] == "ab" * 16
        db.close()
        assert "completed the initialisation" in cut.log_text(), cut.log_text()[-2000:]
        # all back in place: it records on
        v.start()
        try:
            wait_for("recording again", lambda: len(v.segments("cam")) > n, 30)
        finally:
            assert v.stop()[0] == 0

    def test_unmounted_disk_refused(self):
        root = os.path.join(self.tmp, "unmounted")
        state = os.path.join(root, "state")  # StateDirectory= under systemd
        os.makedirs(state)
        env = dict(os.environ, STATE_DIRECTORY=state)
        v = Vigil(root, [("cam", self.cam.url("h264"), "video")])
        v.logfile = open(v.logpath, "a")
        v.proc = subprocess.Popen([os.path.join(integration.BUILD, "vigild"), "-c", v.conf],
                                  stdout=v.logfile, stderr=subprocess.STDOUT, env=env)
        try:
            wait_for("recording", lambda: len(v.segments("cam")) >= 2, 30)
        finally:
            assert v.stop()[0] == 0
        assert os.path.exists(os.path.join(state, "archive-id"))
        n = len(v.segments("cam"))
        disk = os.path.join(root, "disk")
        os.rename(v.data, disk)  # "unmounted": the mount point is an empty directory
        os.makedirs(v.data)
        self.start_refused(v, "is its disk mounted?", env)
        assert os.listdir(v.data) == []
        os.rmdir(v.data)  # or not even the mount point
        p = subprocess.run([os.path.join(integration.BUILD, "vigild"), "-c", v.conf],
                           capture_output=True, text=True, timeout=30, env=env)
        assert p.returncode != 0 and "is missing, but archive" in p.stderr, p.stderr[-2000:]
        assert not os.path.exists(v.data), "a refused start created data_dir"
        # vigilctl run meanwhile leaves an index behind: still not this archive
        os.makedirs(v.data)
        v.ctl("segments", "cam", check=False)
        if os.path.exists(os.path.join(v.data, "index.db")):
            self.start_refused(v, "this appliance's archive is", env)
            shutil.rmtree(v.data)
        else:
            os.rmdir(v.data)
        os.rename(disk, v.data)  # mounted again
        v.logfile = open(v.logpath, "a")
        v.proc = subprocess.Popen([os.path.join(integration.BUILD, "vigild"), "-c", v.conf],
                                  stdout=v.logfile, stderr=subprocess.STDOUT, env=env)
        try:
            wait_for("recording on the same archive", lambda: len(v.segments("cam")) > n, 30)
        finally:
            assert v.stop()[0] == 0
        v.ctl("check")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("-k", default="", help="run tests whose name contains this")
    args = ap.parse_args()
    integration.BUILD = args.build
    passed = failed = skipped = 0
    with tempfile.TemporaryDirectory(prefix="vigil-rf-") as tmp:
        suite = Suite(tmp)
        try:
            for name in sorted(n for n in dir(Suite) if n.startswith("test_") and args.k in n):
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
                    log("FAIL %s (%.1f s)\n%s%s" % (name, time.monotonic() - t0,
                                                    traceback.format_exc(),
                                                    integration.camsim_state(suite)))
        finally:
            suite.close()
            if failed:
                log("--- camera simulator stderr tail ---\n" + suite.cam.err_tail())
    log("retention faults: %d passed, %d failed, %d skipped" % (passed, failed, skipped))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
