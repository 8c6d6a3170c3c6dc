#!/usr/bin/env python3
"""Crash-consistency harness (after ALICE, OSDI 2014, and CrashMonkey, OSDI
2018).

1. Record: a short workload runs with crash-recorder.so preloaded into vigild
   and vigilctl: recording two sources (video and G.711 audio) in 2 s
   segments, retention deleting every second (a small capacity), a hold, an
   export, a clean stop. Every file-system operation under the data
   directory is logged with its data (SQLite's too).
2. Replay: the log is run forward through a model of what a power cut keeps:
   a file's data is durable once the file is fsync'ed/fdatasync'ed, a
   directory entry (create, rename, unlink, mkdir, rmdir) once its
   directory is fsync'ed; nothing else is. At every sync or rename point
   the durable state is one crash state; a few more per point persist a
   prefix or a random subset of the operations still pending (the
   reorderings a disk and the page cache may produce).
3. Check: each state is written to a fresh directory, vigild starts on it
   (what the product does at a real restart) until READY and stops, then:
   `vigilctl check --deep` is clean, no row points at missing data, each
   source that was recording lost at most --loss-bound seconds (the
   periodic sync bound of [archive] sync_seconds), and no segment listed
   in a destruction record is still a row.

usage: harness.py [--build DIR] [--states N] [--variants K] [--loss-bound S]
                  [--seed N] [--results FILE]
Prints each violation, a summary, and ends with "crash: N passed, N failed"
(states); exit 1 on any violation.
"""
import argparse
import json
import os
import random
import shutil
import signal
import sqlite3
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import integration  # noqa: E402
from integration import Camsim, log, wait_for  # noqa: E402

REC = struct.Struct("<IIqiiqqqII")
MAGIC = 0x52435256
(OP_CREATE, OP_TRUNC_OPEN, OP_WRITE, OP_TRUNCATE, OP_FSYNC, OP_FDATASYNC, OP_RENAME, OP_UNLINK,
 OP_MKDIR, OP_RMDIR) = range(1, 11)
SOURCES = ("cam", "line")
SECTION = "## Crash-consistency harness (tests/crash/harness.py)"


class Op:
    __slots__ = ("seq", "op", "t_us", "pid", "is_dir", "ino", "off", "len", "path", "path2",
                 "data")


def read_log(path):
    ops = []
    with open(path, "rb") as f:
        buf = f.read()
    pos = 0
    while pos + REC.size <= len(buf):
        magic, op, t_us, pid, is_dir, ino, off, ln, pl, p2l = REC.unpack_from(buf, pos)
        if magic != MAGIC:
            raise SystemExit("crash log corrupt at byte %d" % pos)
        pos += REC.size
        o = Op()
        o.seq, o.op, o.t_us, o.pid, o.is_dir, o.ino, o.off, o.len = (len(ops), op, t_us, pid,
                                                                     is_dir, ino, off, ln)
        o.path = buf[pos:pos + pl].decode()
        pos += pl
        o.path2 = buf[pos:pos + p2l].decode()
        pos += p2l
        o.data = None
        if op == OP_WRITE:
            o.data = buf[pos:pos + ln]
            pos += ln
        ops.append(o)
    return ops


# ---------------------------------------------------------------- the model

class Model:
    """Volatile and durable views of the data directory.

    Inodes get internal ids (an inode number can be reused after an unlink).
    Directories are inodes whose content is a name -> id map."""

    ROOT = 0

    def __init__(self):
        self.next_id = 1
        self.is_dir = {self.ROOT: True}
        self.vdata = {}                 # file id -> bytearray (what the page cache has)
        self.ddata = {}                 # file id -> bytes (what the disk has)
        self.vent = {self.ROOT: {}}     # dir id -> {name: id}
        self.dent = {self.ROOT: {}}
        self.by_ino = {}                # inode number -> current id
        self.pending = []               # ops not yet durable: (seq, kind, ...)
        self.unknown = 0

    def new(self, ino, is_dir):
        i = self.next_id
        self.next_id += 1
        self.is_dir[i] = is_dir
        if is_dir:
            self.vent[i], self.dent[i] = {}, {}
        else:
            self.vdata[i], self.ddata[i] = bytearray(), b""
        if ino >= 0:
            self.by_ino[ino] = i
        return i

    def lookup(self, path):
        cur = self.ROOT
        if path in (".", ""):
            return cur
        for part in path.split("/"):
            ent = self.vent.get(cur)
            if ent is None or part not in ent:
                return None
            cur = ent[part]
        return cur

    def parent(self, path):
        d, _, name = path.rpartition("/")
        return self.lookup(d or "."), name

    def file_id(self, o):
        i = self.by_ino.get(o.ino)
        if i is None or self.is_dir.get(i):
            i = self.lookup(o.path)
        return i

    # --- operations on the volatile view; what is not durable is pending
    def apply(self, o):
        if o.op in (OP_CREATE, OP_MKDIR):
            d, name = self.parent(o.path)
            if d is None:
                self.unknown += 1
                return
            i = self.new(o.ino, o.op == OP_MKDIR)
            self.vent[d][name] = i
            self.pending.append((o.seq, "link", d, name, i))
        elif o.op in (OP_WRITE, OP_TRUNCATE, OP_TRUNC_OPEN):
            i = self.file_id(o)
            if i is None or self.is_dir.get(i):
                self.unknown += 1
                return
            if o.op == OP_WRITE:
                change = ("write", i, o.off, o.data)
            else:
                change = ("size", i, o.len if o.op == OP_TRUNCATE else 0)
            apply_change(self.vdata, change[1:], change[0])
            self.pending.append((o.seq,) + change)
        elif o.op in (OP_FSYNC, OP_FDATASYNC):
            i = self.lookup(o.path) if o.is_dir else self.file_id(o)
            if i is None:
                self.unknown += 1
                return
            if self.is_dir[i]:
                self.dent[i] = dict(self.vent[i])
                self.pending = [q for q in (self.dir_synced(p, i) for p in self.pending) if q]
            else:
                self.ddata[i] = bytes(self.vdata[i])
                self.pending = [p for p in self.pending if not (p[1] in ("write", "size")
                                                                and p[2] == i)]
        elif o.op == OP_RENAME:
            d1, n1 = self.parent(o.path)
            d2, n2 = self.parent(o.path2)
            if d1 is None or d2 is None or n1 not in self.vent[d1]:
                self.unknown += 1
                return
            i = self.vent[d1].pop(n1)
            self.vent[d2][n2] = i
            # one atomic step on disk: both halves persist together
            self.pending.append((o.seq, "rename", d1, n1, d2, n2, i))
        elif o.op in (OP_UNLINK, OP_RMDIR):
            d, name = self.parent(o.path)
            if d is None or name not in self.vent[d]:
                self.unknown += 1
                return
            del self.vent[d][name]
            self.pending.append((o.seq, "unlink", d, name))

    @staticmethod
    def dir_synced(p, d):
        """What is left pending of p once directory d is synced (None: nothing)."""
        kind = p[1]
        if kind in ("link", "unlink"):
            return None if p[2] == d else p
        if kind != "rename":
            return p
        _, _, d1, n1, d2, n2, i = p
        if d1 == d and d2 == d:
            return None
        if d2 == d:  # the new name is durable; the old one may still be there
            return (p[0], "unlink", d1, n1)
        if d1 == d:  # the old name is gone for good; the new one may not be there yet
            return (p[0], "link", d2, n2, i)
        return p

    # --- crash states
    def state(self, chosen):
        """Durable view plus the chosen pending changes (in their order)."""
        data = dict(self.ddata)
        ent = {d: dict(e) for d, e in self.dent.items()}
        touched = set()
        for p in chosen:
            kind = p[1]
            if kind in ("write", "size"):
                if p[2] not in touched:
                    data[p[2]] = bytearray(data[p[2]])
                    touched.add(p[2])
                apply_change(data, p[2:], kind)
            elif kind == "link":
                ent[p[2]][p[3]] = p[4]
            elif kind == "unlink":
                ent[p[2]].pop(p[3], None)
            elif kind == "rename":
                if ent[p[2]].get(p[3]) == p[6]:
                    del ent[p[2]][p[3]]
                ent[p[4]][p[5]] = p[6]
        return data, ent

    def materialize(self, data, ent, out):
        def walk(d, path):
            for name, i in ent.get(d, {}).items():
                full = os.path.join(path, name)
                if self.is_dir[i]:
                    os.makedirs(full, exist_ok=True)
                    walk(i, full)
                elif not name.endswith("-shm"):  # SQLite rebuilds its shared-memory index
                    with open(full, "wb") as f:
                        f.write(data[i])
        os.makedirs(out, exist_ok=True)
        walk(self.ROOT, out)


def apply_change(store, args, kind):
    if kind == "write":
        i, off, blob = args
        buf = store[i]
        if len(buf) < off:
            buf.extend(b"\0" * (off - len(buf)))
        buf[off:off + len(blob)] = blob
    else:
        i, size = args
        buf = store[i]
        if len(buf) > size:
            del buf[size:]
        else:
            buf.extend(b"\0" * (size - len(buf)))


# ---------------------------------------------------------------- workload

def config_text(data, port, http_port, segment_seconds=2):
    text = ("[server]\ndata_dir = %s\nlog_level = info\nhttp_listen = 127.0.0.1:%d\n"
            "[archive]\nsegment_seconds = %d\n"
            "[retention]\ncapacity_bytes = 700000\nreserve_percent = 10\nsweep_seconds = 1\n"
            % (data, http_port, segment_seconds))
    text += "[source cam]\nurl = rtsp://127.0.0.1:%d/h264\nkind = video\n" % port
    text += "[source line]\nurl = rtsp://127.0.0.1:%d/line-pcma\nkind = audio\n" % port
    return text


def record_workload(build, root):
    """Runs the workload under the recorder; returns the log's path."""
    data = os.path.join(root, "data")
    os.makedirs(data)
    crash_log = os.path.join(root, "ops.log")
    conf = os.path.join(root, "vigil.conf")
    cam = Camsim()
    env = dict(os.environ, LD_PRELOAD=os.path.abspath(os.path.join(build, "crash-recorder.so")),
               CRASH_ROOT=data, CRASH_LOG=crash_log,
               ASAN_OPTIONS=os.environ.get("ASAN_OPTIONS", "") + ":verify_asan_link_order=0")
    try:
        with open(conf, "w") as f:
            f.write(config_text(data, cam.port, integration.free_port()))
        ctl = [os.path.join(build, "vigilctl"), "-c", conf]

        def run_ctl(*args, check=True):
            p = subprocess.run(ctl + list(args), capture_output=True, text=True, env=env,
                               timeout=120)
            if check and p.returncode != 0:
                raise AssertionError("vigilctl %s: %s%s" % (args, p.stdout, p.stderr))
            return p

        def segments(s):
            p = run_ctl("segments", s, "--json", check=False)
            return json.loads(p.stdout) if p.returncode == 0 else []

        with open(os.path.join(root, "workload-vigild.log"), "w") as vlog:
            v = subprocess.Popen([os.path.join(build, "vigild"), "-c", conf], stdout=vlog,
                                 stderr=subprocess.STDOUT, env=env)
            try:
                wait_for("segments of both sources",
                         lambda: len(segments("cam")) >= 2 and len(segments("line")) >= 2, 60)
                now = time.time()
                run_ctl("hold", "add", "--case", "C-7", "--reason", "crash harness", "--source",
                        "line", "--from", "%d" % (now - 30), "--to", "%d" % (now - 1))
                run_ctl("export", "cam", "--from", "%d" % (now - 4), "--to", "%d" % (now - 1),
                        "-o", os.path.join(root, "clip.mp4"))
                wait_for("retention deleting", lambda: json.loads(
                    run_ctl("destruction-log", "--json").stdout), 60)
                first = segments("cam")[-1]["id"]
                wait_for("two more segments", lambda: segments("cam") and
                         segments("cam")[-1]["id"] >= first + 2, 30)
            finally:
                v.send_signal(signal.SIGTERM)
                v.wait(30)
        return crash_log
    finally:
        cam.stop()


# ---------------------------------------------------------------- checking

def recover_and_check(build, state_dir, t_crash_us, recording, loss_bound):
    """Starts vigild on the state until READY, stops it, checks. Returns a
    list of violations (strings) and the loss per source."""
    conf = os.path.join(state_dir, "vigil.conf")
    data = os.path.join(state_dir, "data")
    with open(conf, "w") as f:
        # nothing listens on port 9: recovery only, no new recording
        f.write(config_text(data, 9, integration.free_port()))
    ctl = [os.path.join(build, "vigilctl"), "-c", conf]
    out = []
    logpath = os.path.join(state_dir, "vigild.log")
    with open(logpath, "w") as vlog:
        v = subprocess.Popen([os.path.join(build, "vigild"), "-c", conf], stdout=vlog,
                             stderr=subprocess.STDOUT)
        try:
            def ready():
                if v.poll() is not None:
                    return True
                with open(logpath) as f:
                    return "source(s) into" in f.read()
            wait_for("vigild ready", ready, 60, interval=0.05)
        finally:
            if v.poll() is None:
                v.send_signal(signal.SIGTERM)
            rc = v.wait(30)
    if rc != 0:
        with open(logpath) as f:
            out.append("vigild did not start and stop cleanly (exit %s): %s" % (
                rc, f.read()[-600:].replace("\n", " | ")))
        return out, {}
    p = subprocess.run(ctl + ["check", "--deep"], capture_output=True, text=True, timeout=120)
    if p.returncode != 0:
        out.append("vigilctl check --deep: %s%s" % (p.stdout.strip(), p.stderr.strip()))
    # The rest reads the index directly (vigild has stopped): one process
    # instead of three vigilctl runs per state.
    loss = {}
    db = sqlite3.connect(os.path.join(data, "index.db"))
    try:
        rows = db.execute("SELECT g.id, s.name, g.end_us FROM segment g"
                          " JOIN source s ON s.id = g.source_id").fetchall()
        destroyed = db.execute("SELECT segment_id, path FROM destruction_segment").fetchall()
    finally:
        db.close()
    ids = {r[0] for r in rows}
    for s in SOURCES:
        if s in recording:
            ends = [r[2] for r in rows if r[1] == s]
            lost = (t_crash_us - max(ends)) / 1e6 if ends else float("inf")
            loss[s] = lost
            if lost > loss_bound:
                out.append("%s lost %.1f s (bound %.1f s)" % (s, lost, loss_bound))
    # Destruction records agree with the disk: what they list is gone, row and file.
    for seg_id, path in destroyed:
        if seg_id in ids:
            out.append("segment %d is in a destruction record and still a row" % seg_id)
        if os.path.exists(os.path.join(data, path)):
            out.append("%s is in a destruction record and still on disk" % path)
    return out, loss


def recording_at(ops, k, window_us):
    """Sources whose media were being written in the window before op k:
    what a power cut at k can cost them is bounded."""
    t = ops[k].t_us
    found = set()
    j = k
    while j >= 0 and ops[j].t_us >= t - window_us:
        o = ops[j]
        if o.op == OP_WRITE and o.path.startswith("media/"):
            found.add(o.path.split("/")[1])
        j -= 1
    # and had been for a while (not the first seconds of a connection)
    return {s for s in found if any(o.op == OP_FSYNC and o.path.startswith("media/%s/" % s)
                                    and not o.is_dir and o.t_us < t - window_us
                                    for o in ops[:k])}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--states", type=int, default=150, help="at most this many states (0: all)")
    ap.add_argument("--variants", type=int, default=2,
                    help="states per crash point besides the durable one")
    ap.add_argument("--loss-bound", type=float, default=6.0,
                    help="seconds a recording source may lose (sync_seconds + one fragment)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--results", default=None)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    integration.BUILD = args.build
    rng = random.Random(args.seed)
    root = tempfile.mkdtemp(prefix="vigil-crash-harness-")
    t_start = time.monotonic()
    violations = []
    explored = failed_states = 0
    max_loss = {}
    try:
        log("crash: recording the workload")
        ops = read_log(record_workload(args.build, root))
        points = [o.seq for o in ops if o.op in (OP_FSYNC, OP_FDATASYNC, OP_RENAME)]
        log("crash: %d operations, %d sync/rename points" % (len(ops), len(points)))
        per_point = 1 + args.variants
        if args.states and len(points) * per_point > args.states:
            step = len(points) * per_point / args.states
            points = sorted({points[int(i * step)] for i in range(args.states // per_point)})
        chosen_points = set(points)
        model = Model()
        for o in ops:
            model.apply(o)
            if o.seq not in chosen_points:
                continue
            pend = sorted(model.pending)
            variants = [("durable", [])]
            for v in range(args.variants):
                if not pend:
                    break
                if v % 2 == 0:  # in order: a prefix of what was pending
                    n = rng.randint(1, len(pend))
                    variants.append(("prefix %d/%d" % (n, len(pend)), pend[:n]))
                else:           # reordered: any subset
                    sub = [p for p in pend if rng.random() < 0.5]
                    variants.append(("subset %d/%d" % (len(sub), len(pend)), sub))
            recording = recording_at(ops, o.seq, 1500000)
            for name, chosen in variants:
                data, ent = model.state(chosen)
                sdir = os.path.join(root, "state")
                shutil.rmtree(sdir, ignore_errors=True)
                model.materialize(data, ent, os.path.join(sdir, "data"))
                problems, loss = recover_and_check(args.build, sdir, o.t_us, recording,
                                                   args.loss_bound)
                explored += 1
                failed_states += 1 if problems else 0
                for s, x in loss.items():
                    max_loss[s] = max(max_loss.get(s, 0.0), x)
                for prob in problems:
                    desc = "op %d (%s %s), %s: %s" % (o.seq, {OP_FSYNC: "fsync",
                                                              OP_FDATASYNC: "fdatasync",
                                                              OP_RENAME: "rename"}[o.op],
                                                      o.path, name, prob)
                    violations.append(desc)
                    log("VIOLATION " + desc)
        took = time.monotonic() - t_start
        if model.unknown:
            log("crash: %d operations on files the model did not know" % model.unknown)
        summary = ("crash: %d states explored from %d operations (%d sync/rename points "
                   "checked), %d violations, %.0f s; worst loss %s" % (
                       explored, len(ops), len(points), len(violations), took,
                       ", ".join("%s %.1f s" % kv for kv in sorted(max_loss.items())) or "-"))
        log(summary)
        log("crash: %d passed, %d failed" % (explored - failed_states, failed_states))
        if args.results:
            write_results(args.results, explored, len(ops), len(points), violations, took,
                          max_loss, args)
        return 1 if violations else 0
    finally:
        if args.keep:
            log("crash: kept %s" % root)
        else:
            shutil.rmtree(root, ignore_errors=True)


def write_results(path, explored, n_ops, n_points, violations, took, max_loss, args):
    text = SECTION + "\n\n"
    text += ("%s: workload of two sources in 2 s segments, retention deleting, a hold, an "
             "export, a clean stop; %d file-system operations recorded. %d crash states "
             "(the durable state and %d reorderings per sync/rename point, %d points) each "
             "recovered by starting vigild and checked with `vigilctl check --deep`, loss bound "
             "%.1f s and the destruction records, in %.0f s.\n\n"
             "| states explored | violations | worst loss per source |\n|---|---|---|\n"
             "| %d | %d | %s |\n" % (time.strftime("%Y-%m-%d"), n_ops, explored, args.variants,
                                     n_points, args.loss_bound, took, explored, len(violations),
                                     ", ".join("%s %.1f s" % kv for kv in sorted(max_loss.items()))
                                     or "-"))
    if violations:
        text += "\nViolations:\n\n" + "\n".join("- " + v for v in violations[:20]) + "\n"
    old = open(path).read() if os.path.exists(path) else "# Benchmark results\n"
    start = old.find(SECTION)
    if start >= 0:
        nxt = old.find("\n## ", start + len(SECTION))
        old = old[:start].rstrip("\n") + ("\n\n" + old[nxt + 1:] if nxt >= 0 else "\n")
    with open(path, "w") as f:
        f.write(old.rstrip("\n") + "\n\n" + text)


if __name__ == "__main__":
    sys.exit(main())
