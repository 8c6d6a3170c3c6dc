#!/usr/bin/env python3
"""Checks the fault-injection shim (tests/tools/faultfs.c) itself: each operation
and each action fires under LD_PRELOAD, count=N spends a rule, the rules file is
re-read while the process runs, and libavformat's file output is intercepted.

Ends with the line "N passed, N failed"; exit status 1 on any failure.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback

BUILD = "build"

# Runs in a child process under LD_PRELOAD: performs one operation on a path
# and prints {"ok": bool, "errno": name, "seconds": float} as JSON.
CHILD = r'''
import ctypes, errno, json, os, sys, time
op, path = sys.argv[1], sys.argv[2]
libc = ctypes.CDLL(None, use_errno=True)
def run():
    if op == "open":
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o644))
    elif op == "write":
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
        try: os.write(fd, b"x")
        finally: os.close(fd)
    elif op == "pwrite":
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
        try: os.pwrite(fd, b"x", 0)
        finally: os.close(fd)
    elif op in ("fsync", "fdatasync", "syncfs", "ftruncate", "close"):
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        if op == "fsync": os.fsync(fd)
        elif op == "fdatasync": os.fdatasync(fd)
        elif op == "ftruncate": os.ftruncate(fd, 0)
        elif op == "syncfs":
            if libc.syncfs(fd) != 0:
                e = ctypes.get_errno(); os.close(fd); raise OSError(e, os.strerror(e))
        if op != "close": os.close(fd)
        else: os.close(fd)
    elif op == "rename":
        open(path, "w").close()
        os.rename(path, path + ".renamed")
    elif op == "unlink":
        open(path, "w").close()
        os.unlink(path)
    elif op == "unlinkat":
        open(path, "w").close()
        d = os.open(os.path.dirname(path), os.O_RDONLY)
        try: os.unlink(os.path.basename(path), dir_fd=d)
        finally: os.close(d)
    elif op == "stat":
        open(path, "w").close()
        os.stat(path)
    elif op == "mkdir":
        os.mkdir(path)
    elif op in ("read", "pread"):
        with open(path, "wb") as f:
            f.write(b"xy")
        fd = os.open(path, os.O_RDONLY)
        try:
            got = os.read(fd, 2) if op == "read" else os.pread(fd, 1, 1)
            assert got in (b"xy", b"y"), got
        finally: os.close(fd)
    else:
        raise SystemExit("unknown op " + op)
t0 = time.monotonic()
try:
    run(); out = {"ok": True, "errno": None}
except OSError as e:
    out = {"ok": False, "errno": errno.errorcode.get(e.errno, str(e.errno))}
out["seconds"] = time.monotonic() - t0
print(json.dumps(out))
'''

OPS = ["open", "write", "pwrite", "fsync", "fdatasync", "rename", "unlink", "unlinkat", "stat",
       "mkdir", "ftruncate", "close", "syncfs", "read"]
ERRNOS = ["EIO", "ENOSPC", "EACCES", "EROFS", "EPERM", "EDQUOT"]


class Suite:
    def __init__(self):
        self.passed = 0
        self.failed = 0
        self.tmp = tempfile.mkdtemp(prefix="faultfs-test-")
        self.rules = os.path.join(self.tmp, "faults")
        self.log = os.path.join(self.tmp, "fired.log")
        self.shim = os.path.abspath(os.path.join(BUILD, "faultfs.so"))
        self.n = 0

    def env(self):
        env = dict(os.environ)
        env["LD_PRELOAD"] = self.shim
        env["VIGIL_FAULTS_FILE"] = self.rules
        env["VIGIL_FAULTS_LOG"] = self.log
        return env

    def set_rules(self, text):
        # a fresh file each time: a new size or mtime is what the shim watches
        tmp = self.rules + ".new"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, self.rules)

    def fresh_path(self, name):
        self.n += 1
        d = os.path.join(self.tmp, "case%d" % self.n)
        os.mkdir(d)
        return os.path.join(d, name)

    def child(self, op, path):
        out = subprocess.run([sys.executable, "-c", CHILD, op, path], env=self.env(),
                             capture_output=True, text=True, timeout=60)
        if out.returncode != 0:
            raise AssertionError("child failed: %s" % out.stderr)
        return json.loads(out.stdout.strip().splitlines()[-1])

    def run(self, name, fn):
        try:
            fn()
            self.passed += 1
            print("ok   %s" % name, flush=True)
        except Exception:
            self.failed += 1
            print("FAIL %s\n%s" % (name, traceback.format_exc()), flush=True)

    # ---- tests ----

    def test_no_rules_is_transparent(self):
        self.set_rules("# nothing\n")
        for op in OPS:
            r = self.child(op, self.fresh_path("plain"))
            assert r["ok"], (op, r)

    def test_each_op_fails_with_each_errno(self):
        for i, op in enumerate(OPS):
            err = ERRNOS[i % len(ERRNOS)]
            self.set_rules("%s target-%s %s\n" % (op, op, err))
            r = self.child(op, self.fresh_path("target-%s" % op))
            assert not r["ok"] and r["errno"] == err, (op, err, r)
            # a path the rule does not name is untouched
            r = self.child(op, self.fresh_path("other-%s" % op))
            assert r["ok"], (op, "other path", r)
        for err in ERRNOS:
            self.set_rules("write faultfs-test- %s\n" % err)
            r = self.child("write", self.fresh_path("any"))
            assert not r["ok"] and r["errno"] == err, (err, r)
        # * as the path: any path (mkdir, which the child does nowhere else)
        self.set_rules("mkdir * EDQUOT\n")
        r = self.child("mkdir", self.fresh_path("anywhere"))
        assert r["errno"] == "EDQUOT", r

    def test_read_rule_covers_pread(self):
        self.set_rules("read preadme EIO\n")
        r = self.child("pread", self.fresh_path("preadme"))
        assert not r["ok"] and r["errno"] == "EIO", r
        r = self.child("pread", self.fresh_path("other"))
        assert r["ok"], r

    def test_wildcard_op(self):
        self.set_rules("* wild EIO\n")
        r = self.child("mkdir", self.fresh_path("wild"))
        assert r["errno"] == "EIO", r
        r = self.child("stat", self.fresh_path("wild"))
        assert r["errno"] == "EIO", r

    def test_delay(self):
        self.set_rules("fsync slow delay=400\n")
        r = self.child("fsync", self.fresh_path("slow"))
        assert r["ok"], r
        # the call ran after the delay (a lower bound, not a timing assertion)
        assert r["seconds"] >= 0.4, r

    def writes(self, name, n):
        """One process writing a byte n times to a fresh file: 'ok' or the
        errno of each write."""
        script = ("import os,json\nfd=os.open(%r,os.O_WRONLY|os.O_CREAT,0o644)\nres=[]\n"
                  "for i in range(%d):\n"
                  "    try: os.write(fd,b'x'); res.append('ok')\n"
                  "    except OSError as e: res.append(e.errno)\n"
                  "print(json.dumps(res))\n" % (self.fresh_path(name), n))
        out = subprocess.run([sys.executable, "-c", script], env=self.env(), capture_output=True,
                             text=True, timeout=60)
        return json.loads(out.stdout)

    def test_skip_lets_calls_through_first(self):
        self.set_rules("write skipped EIO skip=2 count=1\n")
        # four writes: two let through, one failed, then the rule is spent
        res = self.writes("skipped", 4)
        assert res == ["ok", "ok", 5, "ok"], res

    def test_count_spends_rule(self):
        self.set_rules("write counted EIO count=2\n")
        # one process doing three writes: the first two fail, the third goes through
        res = self.writes("counted", 3)
        assert res[:2] == [5, 5] and res[2] == "ok", res

    def test_reload_while_running(self):
        self.set_rules("# off\n")
        path = self.fresh_path("live")
        script = ("import os,sys,time\nfd=os.open(%r,os.O_WRONLY|os.O_CREAT,0o644)\n"
                  "for line in sys.stdin:\n"
                  "    try: os.write(fd,b'x'); print('ok',flush=True)\n"
                  "    except OSError as e: print(e.errno,flush=True)\n" % path)
        p = subprocess.Popen([sys.executable, "-c", script], env=self.env(),
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

        def ask():
            p.stdin.write("go\n")
            p.stdin.flush()
            return p.stdout.readline().strip()

        def until(want):
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                got = ask()
                if got == want:
                    return
                time.sleep(0.02)
            raise AssertionError("never saw %s" % want)

        try:
            assert ask() == "ok"
            self.set_rules("write live EIO\n")
            until("5")
            self.set_rules("# off again\n")
            until("ok")
        finally:
            p.stdin.close()
            p.wait(timeout=10)

    def test_fired_log(self):
        if os.path.exists(self.log):
            os.unlink(self.log)
        self.set_rules("rename logged-name EROFS\n")
        path = self.fresh_path("logged-name")
        r = self.child("rename", path)
        assert r["errno"] == "EROFS", r
        with open(self.log) as f:
            lines = f.read().splitlines()
        assert any(line.startswith("rename EROFS ") and "logged-name" in line for line in lines), \
            lines

    def test_libavformat_file_output(self):
        if not shutil.which("ffmpeg"):
            print("skip: no ffmpeg", flush=True)
            return
        out = self.fresh_path("clip.mp4")
        cmd = ["ffmpeg", "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i",
               "testsrc=size=64x64:rate=5", "-t", "1", "-c:v", "mpeg4", out]
        self.set_rules("write clip.mp4 ENOSPC\n")
        bad = subprocess.run(cmd, env=self.env(), capture_output=True, text=True, timeout=60)
        assert bad.returncode != 0, "ffmpeg wrote despite the fault"
        os.unlink(out)
        self.set_rules("# off\n")
        good = subprocess.run(cmd, env=self.env(), capture_output=True, text=True, timeout=60)
        assert good.returncode == 0 and os.path.getsize(out) > 0, good.stderr


def main():
    global BUILD
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    BUILD = ap.parse_args().build
    s = Suite()
    try:
        for name in sorted(n for n in dir(s) if n.startswith("test_")):
            s.run(name, getattr(s, name))
    finally:
        shutil.rmtree(s.tmp, ignore_errors=True)
    print("%d passed, %d failed" % (s.passed, s.failed), flush=True)
    sys.exit(1 if s.failed else 0)


if __name__ == "__main__":
    main()
