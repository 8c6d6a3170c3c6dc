#!/usr/bin/env python3
"""Runs the integration suites of `make check` in a few lanes at once.

Most suites spend their time waiting for the wall clock (a camera simulator
streams in real time, segments close every few seconds), not computing, so
two or three of them share two cores without slowing each other much; run
one after another they would take most of CI's time budget. Each suite's
output is kept in a file and printed whole when it ends (never interleaved),
then a summary with every suite's time. Exit status 1 if any suite failed.

usage: run_suites.py [--jobs N] [--build DIR] SUITE...
  SUITE is a shell command line (one argument); "{build}" in it becomes the
  build directory. --first CMD runs alone before the others (the fault
  shim's own test: the others rely on it). Suites start in the order given:
  put the longest first so the lanes end together.
  VIGIL_TEST_JOBS overrides --jobs (1 runs them one by one, as before).
"""
import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--build", default="build")
    ap.add_argument("--first", default=None, help="a suite to run alone before the others")
    ap.add_argument("suites", nargs="+")
    args = ap.parse_args()
    jobs = int(os.environ.get("VIGIL_TEST_JOBS", args.jobs))
    first = args.first.replace("{build}", args.build) if args.first else None
    cmds = ([first] if first else []) + [s.replace("{build}", args.build) for s in args.suites]
    results = {}
    lock = threading.Lock()
    queue = [c for c in cmds if c != first]

    def run(cmd):
        t0 = time.monotonic()
        with tempfile.TemporaryFile(mode="w+") as out:
            # unbuffered, so a suite's file shows its progress while it runs
            env = dict(os.environ, PYTHONUNBUFFERED="1")
            rc = subprocess.call(cmd, shell=True, stdout=out, stderr=subprocess.STDOUT, env=env)
            out.seek(0)
            text = out.read()
        took = time.monotonic() - t0
        with lock:
            results[cmd] = (rc, took)
            sys.stdout.write("==== %s (%.0f s, %s)\n%s\n" % (cmd, took, "ok" if rc == 0 else
                                                            "FAILED rc=%d" % rc, text))
            sys.stdout.flush()

    def lane():
        while True:
            with lock:
                if not queue:
                    return
                cmd = queue.pop(0)
            run(cmd)

    t0 = time.monotonic()
    if first:
        run(first)
    lanes = [threading.Thread(target=lane) for _ in range(max(1, jobs))]
    for t in lanes:
        t.start()
    for t in lanes:
        t.join()
    print("==== summary (%d lanes, %.0f s in all)" % (jobs, time.monotonic() - t0))
    failed = 0
    for cmd in cmds:
        rc, took = results[cmd]
        failed += rc != 0
        print("%-8s %5.0f s  %s" % ("ok" if rc == 0 else "FAILED", took, cmd))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
