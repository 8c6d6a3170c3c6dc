#!/usr/bin/env python3
"""Call-quality report queries over a large index (README "Call quality"):
N synthetic calls over 60 days (bench_calls.py's generator: 200 lines, 400
agents, 20 queues), each given an announcement state (about 96 % present,
2 % absent, 1 % partial, the rest unknown or unchecked), and 100 000 QA
evaluations of a form made through the API; then, over HTTP
(build/bench/webserve, one request at a time, each also committing its
`report.run` audit row), 30 requests of each:

- GET /api/v1/reports/announcement?from&to&group=source|queue|agent|day over
  the whole 60 days, and over one day;
- GET /api/v1/reports/qa?from&to&group=agent|queue over the 60 days.

(--requests of each, 30 by default.)

Results go into bench/RESULTS.md (a section of its own).

usage: bench_reports.py [--build DIR] [--results FILE] [--calls N] [--dir D]
"""
import argparse
import json
import os
import random
import shutil
import sqlite3
import subprocess
import tempfile
import time
import urllib.request

from bench_calls import DAY_US, DAYS, N_AGENTS, N_LINES, N_QUEUES, generate, pct, vocabulary
from bench_web import free_port, wait_url

SECTION = "## Call-quality reports (bench/bench_reports.py)"
REQUESTS = 30


def write_section(path, text):
    old = open(path).read() if os.path.exists(path) else "# Benchmark results\n"
    start = old.find(SECTION)
    if start >= 0:
        nxt = old.find("\n## ", start + len(SECTION))
        old = old[:start].rstrip("\n") + ("\n\n" + old[nxt + 1:] if nxt >= 0 else "\n")
    with open(path, "w") as f:
        f.write(old.rstrip("\n") + "\n\n" + text)


def iso(us):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(us // 1000000))


def request(base, token, method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, method=method,
                                 headers={"Authorization": "Bearer " + token,
                                          "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=600) as r:
        return r.status, r.read()


def annotate(db_path, rng):
    """Announcement states for every ended call, as the detector would leave them."""
    db = sqlite3.connect(db_path)
    db.execute("PRAGMA synchronous = OFF")
    ids = [r[0] for r in db.execute("SELECT id FROM call")]
    states = []
    for cid in ids:
        r = rng.random()
        st = "present" if r < 0.96 else "absent" if r < 0.98 else "partial" if r < 0.99 \
            else "unknown" if r < 0.995 else None
        if st:
            states.append((st, rng.randrange(0, 4000000), round(rng.uniform(0.1, 0.99), 3),
                           cid))
    db.executemany("UPDATE call SET ann_state = ?, ann_offset_us = ?, ann_score = ?,"
                   " ann_checked_us = start_us WHERE id = ?", states)
    db.commit()
    db.close()
    return len(states)


def evaluations(db_path, form_id, n, end_us, rng):
    db = sqlite3.connect(db_path)
    db.execute("PRAGMA synchronous = OFF")
    calls = [r for r in db.execute(
        "SELECT id, source_id, start_us, end_us, agent, queue FROM call ORDER BY random() LIMIT ?",
        (n,))]
    rows = []
    for cid, sid, s, e, agent, queue in calls:
        answers = {"greet": rng.choice(["yes", "no"]), "solve": rng.randint(1, 5),
                   "warn": rng.choice(["yes", "yes", "yes", "no"])}
        crit = answers["warn"] == "no"
        score = 0.0 if crit else round(rng.uniform(0.3, 1.0), 3)
        rows.append((form_id, cid, sid, s, max(e, s + 1), "aud%02d" % rng.randrange(20), agent,
                     queue, json.dumps(answers), score, int(crit), "[]", 1, None, s + 3600000000))
    db.executemany("INSERT INTO qa_evaluation(form_id, call_id, source_id, from_us, to_us,"
                   " auditor, agent, queue, answers, score, critical_failed, comments, version,"
                   " supersedes, created_us) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)
    db.execute("UPDATE qa_form SET used = 1 WHERE id = ?", (form_id,))
    db.commit()
    db.close()
    return len(rows)


def timed(base, token, path, requests):
    ms = []
    for _ in range(requests):
        t0 = time.monotonic()
        status, body = request(base, token, "GET", path)
        ms.append((time.monotonic() - t0) * 1000)
        assert status == 200, (path, status)
    return pct(ms, 50), pct(ms, 99), len(json.loads(body)["rows"])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--results", default="bench/RESULTS.md")
    ap.add_argument("--calls", type=int, default=5000000)
    ap.add_argument("--evaluations", type=int, default=100000)
    ap.add_argument("--requests", type=int, default=REQUESTS, help="of each report")
    ap.add_argument("--dir", default=None)
    args = ap.parse_args()
    root = args.dir or tempfile.mkdtemp(prefix="vigil-bench-reports-")
    data = os.path.join(root, "data")
    os.makedirs(data, exist_ok=True)
    conf = os.path.join(root, "vigil.conf")
    with open(conf, "w") as f:
        f.write("[server]\ndata_dir = %s\nlog_level = warning\ntimezone = Europe/Moscow\n"
                "[retention]\nmin_days = 60\nkeep_days = 3650\n" % data)
        for i in range(N_LINES):
            f.write("[source l%03d]\nurl = rtsp://127.0.0.1:1/none\nkind = audio\n" % i)
    rng = random.Random(17)
    words = vocabulary(rng)
    ctl = [os.path.join(args.build, "vigilctl"), "-c", conf]
    token = subprocess.run(ctl + ["token", "add", "reports", "--perm", "admin"],
                           capture_output=True, text=True, check=True).stdout.strip()
    db = os.path.join(data, "index.db")
    end_us = int(time.time()) * 1000000
    t0 = time.monotonic()
    n = generate(db, args.calls, end_us, rng, words)
    checked = annotate(db, rng)
    gen_s = time.monotonic() - t0
    procs = []
    try:
        port = free_port()
        procs.append(subprocess.Popen([os.path.join(args.build, "bench", "webserve"), conf,
                                       "127.0.0.1:%d" % port], stdout=subprocess.PIPE, text=True))
        assert procs[-1].stdout.readline().startswith("READY")
        base = "http://127.0.0.1:%d" % port
        wait_url(base + "/api/v1/qa/forms", {"Authorization": "Bearer " + token})
        form = {"key": "bench", "title": "bench", "sections": [{"title": "call", "questions": [
            {"id": "greet", "text": "greeted", "type": "yesno", "weight": 1},
            {"id": "solve", "text": "solved", "type": "scale", "weight": 2},
            {"id": "warn", "text": "announcement", "type": "yesno", "critical": True}]}]}
        status, body = request(base, token, "POST", "/api/v1/qa/forms", form)
        form_id = json.loads(body)["id"]
        n_eval = evaluations(db, form_id, args.evaluations, end_us, rng)
        frm, to = iso(end_us - DAYS * DAY_US), iso(end_us)
        day_from, day_to = iso(end_us - 2 * DAY_US), iso(end_us - DAY_US)
        results = []
        for group in ("source", "queue", "agent", "day"):
            path = "/api/v1/reports/announcement?from=%s&to=%s&group=%s" % (frm, to, group)
            results.append(("announcement, 60 days, group=%s" % group,)
                           + timed(base, token, path, args.requests))
        path = "/api/v1/reports/announcement?from=%s&to=%s&group=agent" % (day_from, day_to)
        results.append(("announcement, one day, group=agent",)
                       + timed(base, token, path, args.requests))
        for group in ("agent", "queue"):
            path = "/api/v1/reports/qa?from=%s&to=%s&group=%s" % (frm, to, group)
            results.append(("QA, 60 days, group=%s" % group,) + timed(base, token, path, args.requests))
    finally:
        for p in procs:
            p.terminate()
            p.wait(30)
    load = os.getloadavg()
    table = "\n".join("| %s | %.1f | %.1f | %d |" % r for r in results)
    text = (SECTION + "\n\n"
            "Run %s on this machine (%d cores, shared; load average %.1f / %.1f / %.1f at the "
            "end). %d calls over %d days on %d lines (%d agents, %d queues; %d with an "
            "announcement state), %d QA evaluations; loaded in %.0f s. Each report over HTTP "
            "(webserve, one request at a time, %d of each, every one committing its "
            "`report.run` audit row):\n\n"
            "| report | p50 ms | p99 ms | groups |\n|---|---|---|---|\n%s\n"
            % (time.strftime("%Y-%m-%d"), os.cpu_count(), load[0], load[1], load[2], n, DAYS,
               N_LINES, N_AGENTS, N_QUEUES, checked, n_eval, gen_s, args.requests, table))
    print(text)
    write_section(args.results, text)
    if not args.dir:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
