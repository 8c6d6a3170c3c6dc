#!/usr/bin/env python3
"""Call-quality report queries over a large index (README "Call quality"):
N synthetic calls (5 M by default) over 60 days on 200 lines (400 agents, 20
queues, each call's line, agent and queue drawn at random), generated in SQL
straight into the schema vigilctl creates, each with an announcement state
(about 96 % present, 2 % absent, 1 % partial, the rest unknown or
unchecked), and 100 000 QA evaluations of a form made through the API. The
rows are loaded with the rollup's triggers off and the rollup is then made
by vigil itself (the office zone applied at start, as vigild does: its time
is reported). Then over HTTP (build/bench/webserve, one request at a time,
each also committing its `report.run` audit row):

- GET /api/v1/reports/announcement?from&to&group=source|queue|agent|day over
  the whole 60 days and over one day, side by side: "before" scans the calls
  (WEBSERVE_ANN_SCAN=1, the query path before the rollup; --scan-requests
  of each, 5 by default, as each takes seconds) and "after" reads whole days
  from the rollup (--requests of each, 30 by default);
- GET /api/v1/reports/qa?from&to&group=agent|queue over the 60 days.

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

from bench_calls import DAY_US, DAYS, N_AGENTS, N_LINES, N_QUEUES, pct
from bench_web import free_port, wait_url
from benchlib import generated, note_generated, write_section

SECTION = "## Call-quality reports (bench/bench_reports.py)"
REQUESTS = 30
SCAN_REQUESTS = 5


def iso(us):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(us // 1000000))


def request(base, token, method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, method=method,
                                 headers={"Authorization": "Bearer " + token,
                                          "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=600) as r:
        return r.status, r.read()


def generate_sql(db_path, n_calls, end_us):
    """n_calls ended calls over the DAYS before end_us, in one INSERT ...
    SELECT over a recursive counter (seconds for millions of rows, where
    Python rows take minutes), with their announcement states. What a row
    uses twice (start, state) is a hash of n, not random(): SQLite may
    evaluate a flattened subquery's column once per use. The rollup's
    triggers are set aside meanwhile and its rows and zone name cleared, so
    the next vigil to open the index builds it from the calls."""
    db = sqlite3.connect(db_path)
    db.execute("PRAGMA synchronous = OFF")
    # the indexes take keys in random order: a cache that holds them
    db.execute("PRAGMA cache_size = -3000000")
    for i in range(N_LINES):
        db.execute("INSERT OR IGNORE INTO source(name, kind) VALUES (?, 'audio')", ("l%03d" % i,))
    # a line is its first id plus a random offset: the lines' ids must follow on
    ids = [r[0] for r in db.execute("SELECT id FROM source WHERE name GLOB 'l[0-9][0-9][0-9]'"
                                    " ORDER BY name")]
    assert ids == list(range(ids[0], ids[0] + N_LINES)), ids
    triggers = db.execute("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'"
                          " AND name LIKE 'call\\_ann\\_%' ESCAPE '\\'").fetchall()
    assert len(triggers) == 3, triggers
    for name, _ in triggers:
        db.execute("DROP TRIGGER %s" % name)
    start_us = end_us - DAYS * DAY_US
    step = DAYS * DAY_US // n_calls
    db.execute(
        "INSERT INTO call(call_id, source_id, start_us, end_us, direction, caller, caller_raw,"
        " callee, callee_raw, agent, queue, disposition, origin, ann_state, ann_checked_us,"
        " created_us, updated_us)"
        " SELECT 'g' || n, ?7 + abs(random()) % ?2, s,"
        "  s + (5 + abs(random()) % 355) * 1000000, 'in', c, c, '1001', '1001',"
        "  printf('agent%03d', abs(random()) % ?3), printf('q%02d', abs(random()) % ?4),"
        "  'ANSWERED', 'pbx', CASE WHEN r < 960 THEN 'present' WHEN r < 980 THEN 'absent'"
        "  WHEN r < 990 THEN 'partial' WHEN r < 995 THEN 'unknown' END,"
        "  CASE WHEN r < 995 THEN s END, s, s"
        " FROM (WITH RECURSIVE k(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM k WHERE n + 1 < ?1)"
        "  SELECT n, ?5 + n * ?6 + (n * 2654435761) % ?6 AS s,"
        "  printf('+79%09d', (n * 40503 + 17) % 900000000) AS c,"
        "  ((n * 1103515245 + 12345) / 65536) % 1000 AS r FROM k)",
        (n_calls, N_LINES, N_AGENTS, N_QUEUES, start_us, step, ids[0]))
    for _, sql in triggers:
        db.execute(sql)
    db.execute("DELETE FROM ann_day")
    db.execute("UPDATE ann_zone_name SET name = ''")
    db.commit()
    n = db.execute("SELECT count(*) FROM call").fetchone()[0]
    checked = db.execute("SELECT count(*) FROM call WHERE ann_state IS NOT NULL").fetchone()[0]
    db.close()
    return n, checked


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


def serve(build, conf, scan):
    env = dict(os.environ, WEBSERVE_ANN_SCAN="1" if scan else "0")
    port = free_port()
    t0 = time.monotonic()
    p = subprocess.Popen([os.path.join(build, "bench", "webserve"), conf, "127.0.0.1:%d" % port],
                         stdout=subprocess.PIPE, text=True, env=env)
    assert p.stdout.readline().startswith("READY")
    return p, "http://127.0.0.1:%d" % port, time.monotonic() - t0


def announcement_runs(base, token, end_us, requests):
    frm, to = iso(end_us - DAYS * DAY_US), iso(end_us)
    day_from, day_to = iso(end_us - 2 * DAY_US), iso(end_us - DAY_US)
    out = []
    for group in ("source", "queue", "agent", "day"):
        path = "/api/v1/reports/announcement?from=%s&to=%s&group=%s" % (frm, to, group)
        out.append(("announcement, 60 days, group=%s" % group,) + timed(base, token, path, requests))
    path = "/api/v1/reports/announcement?from=%s&to=%s&group=agent" % (day_from, day_to)
    out.append(("announcement, one day, group=agent",) + timed(base, token, path, requests))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--results", default="bench/RESULTS.md")
    ap.add_argument("--calls", type=int, default=5000000)
    ap.add_argument("--evaluations", type=int, default=100000)
    ap.add_argument("--requests", type=int, default=REQUESTS, help="of each report (rollup)")
    ap.add_argument("--scan-requests", type=int, default=SCAN_REQUESTS,
                    help="of each announcement report scanning the calls")
    ap.add_argument("--dir", default=None,
                    help="work here and keep it; an index generated there before is reused")
    ap.add_argument("--generate-only", action="store_true",
                    help="stop once the index and its rollup are made (with --dir: the "
                    "queries can then run later, e.g. once the machine is quiet)")
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
    ctl = [os.path.join(args.build, "vigilctl"), "-c", conf]
    token = subprocess.run(ctl + ["token", "add", "reports-%d" % os.getpid(), "--perm", "admin"],
                           capture_output=True, text=True, check=True).stdout.strip()
    db = os.path.join(data, "index.db")
    kept = generated(root, args.calls)
    if kept:
        end_us, n, checked, gen_s = kept["end_us"], kept["n"], kept["checked"], kept["gen_s"]
    else:
        end_us = int(time.time()) * 1000000
        t0 = time.monotonic()
        n, checked = generate_sql(db, args.calls, end_us)
        gen_s = time.monotonic() - t0
    procs = []
    try:
        # after: the first start builds the rollup (the office zone is new)
        p, base, build_s = serve(args.build, conf, False)
        procs.append(p)
        wait_url(base + "/api/v1/qa/forms", {"Authorization": "Bearer " + token})
        if kept:
            build_s = kept["build_s"]  # this start found the rollup made
        else:
            note_generated(root, calls=args.calls, end_us=end_us, n=n, checked=checked,
                           gen_s=gen_s, build_s=build_s)
        if args.generate_only:
            print("generated %d calls in %.0f s, rollup in %.0f s: %s" % (n, gen_s, build_s, root))
            return
        con = sqlite3.connect(db)
        rollup_rows = con.execute("SELECT count(*) FROM ann_day").fetchone()[0]
        con.close()
        form = {"key": "bench", "title": "bench", "sections": [{"title": "call", "questions": [
            {"id": "greet", "text": "greeted", "type": "yesno", "weight": 1},
            {"id": "solve", "text": "solved", "type": "scale", "weight": 2},
            {"id": "warn", "text": "announcement", "type": "yesno", "critical": True}]}]}
        status, body = request(base, token, "POST", "/api/v1/qa/forms", form)
        form_id = json.loads(body)["id"]
        n_eval = evaluations(db, form_id, args.evaluations, end_us, rng)
        after = announcement_runs(base, token, end_us, args.requests)
        frm, to = iso(end_us - DAYS * DAY_US), iso(end_us)
        qa = []
        for group in ("agent", "queue"):
            path = "/api/v1/reports/qa?from=%s&to=%s&group=%s" % (frm, to, group)
            qa.append(("QA, 60 days, group=%s" % group,) + timed(base, token, path, args.requests))
        p.terminate()
        p.wait(30)
        # before: the same index, reports scanning the calls
        p, base, _ = serve(args.build, conf, True)
        procs.append(p)
        wait_url(base + "/api/v1/qa/forms", {"Authorization": "Bearer " + token})
        before = announcement_runs(base, token, end_us, args.scan_requests)
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
                p.wait(30)
    load = os.getloadavg()
    rows = []
    for (name, b50, b99, bg), (_, a50, a99, ag) in zip(before, after):
        assert bg == ag, (name, bg, ag)
        rows.append("| %s | %.0f | %.0f | %.1f | %.1f | %.0fx | %d |"
                    % (name, b50, b99, a50, a99, b50 / a50 if a50 else 0, ag))
    table = "\n".join(rows)
    qa_table = "\n".join("| %s | %.1f | %.1f | %d |" % r for r in qa)
    text = (SECTION + "\n\n"
            "Run %s on this machine (%d cores, shared; load average %.1f / %.1f / %.1f at the "
            "end). %d calls over %d days on %d lines (%d agents, %d queues, drawn at random per "
            "call; %d with an announcement state), generated in SQL in %.0f s; vigil built the "
            "daily rollup (%d rows) from them at its first start in %.0f s. %d QA evaluations. "
            "Each report over HTTP (webserve, one request at a time, every one committing its "
            "`report.run` audit row); before: the calls scanned (%d of each), after: whole "
            "office days from the rollup, the edges from the calls (%d of each):\n\n"
            "| announcement report | before p50 ms | before p99 ms | after p50 ms | "
            "after p99 ms | p50 ratio | groups |\n|---|---|---|---|---|---|---|\n%s\n\n"
            "| QA report | p50 ms | p99 ms | groups |\n|---|---|---|---|\n%s\n"
            % (time.strftime("%Y-%m-%d"), os.cpu_count(), load[0], load[1], load[2], n, DAYS,
               N_LINES, N_AGENTS, N_QUEUES, checked, gen_s, rollup_rows, build_s, n_eval,
               args.scan_requests, args.requests, table, qa_table))
    print(text)
    write_section(args.results, SECTION, text)
    if not args.dir:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
