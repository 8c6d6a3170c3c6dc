#!/usr/bin/env python3
"""Contact-centre calls benchmark (README "Contact centre"): 5 M synthetic
calls over 60 days on 200 lines (400 agents, 20 queues, 300 000 customers,
notes on one call in ten) loaded into the schema vigilctl creates, with the
schema's own indexes and FTS5 triggers; then

- search latency through the index API (build/bench/calls_query: one page of
  50 per query, 300 queries of each kind, the second of two passes):
  by number, by trailing digits, by agent and day, by a word of the notes, and
  the newest page;
- the same number search over HTTP (build/bench/webserve, wrk, 4 connections,
  each request also committing its audit row);
- PBX event ingestion over HTTP: POST /api/v1/calls with a new call_id each,
  wrk with 64 keep-alive connections (many events share one commit, as
  from a busy PBX); every 201 is a committed, fsynced row
  (synchronous = FULL) with its audit row;
- `vigilctl calls import` of a 1 M-row Master.csv into the same index.

The API runs as build/bench/webserve (vigild's crash recovery is not wanted:
the index has no media). Results go into bench/RESULTS.md (a section of its own).

usage: bench_calls.py [--build DIR] [--results FILE] [--calls N] [--dir D]
"""
import argparse
import json
import os
import random
import re
import shutil
import sqlite3
import statistics
import subprocess
import tempfile
import time

from bench_web import free_port, wait_url, wrk
from benchlib import generated, note_generated, write_section

SECTION = "## Contact-centre calls (bench/bench_calls.py)"
DAYS = 60
N_LINES = 200
N_AGENTS = 400
N_QUEUES = 20
N_CUSTOMERS = 300000
QUERIES = 300
DAY_US = 86400 * 1000000


def vocabulary(rng, n=2000):
    letters = "абвгдеклмнопрстуя"
    return ["".join(rng.choice(letters) for _ in range(rng.randint(4, 9))) for _ in range(n)]


def customer(i):
    return "+79%09d" % (100000000 + i * 2467 % 900000000)


def rev_digits(num):
    return "".join(c for c in reversed(num) if c.isdigit())


# Per-row "random" choices inside SQL: a multiplicative hash of the row number
# with a salt per choice (random() cannot be used: SQLite evaluates it again
# wherever a subquery's column is used).
def h(salt, mod):
    return "(((k.n + %d) * 2654435761 + %d) %% 4294967291 %% %d)" % (salt * 7919, salt, mod)


def generate(db_path, n_calls, end_us, rng, words):
    """Straight SQL into the index vigilctl created: every row made by one
    INSERT ... SELECT (no Python per row), with the call table's indexes and
    FTS5 triggers dropped for the load and made again from their own schema
    text afterwards (one sort each instead of 5 M random inserts), and the
    FTS5 index given the rows the triggers would have given it (notes or
    tags, under their start-ordered text key). The result is the schema
    vigild would have built row by row."""
    db = sqlite3.connect(db_path, isolation_level=None)
    db.execute("PRAGMA journal_mode = DELETE")  # back to WAL below
    db.execute("PRAGMA synchronous = OFF")
    db.execute("PRAGMA cache_size = -524288")
    db.execute("PRAGMA temp_store = MEMORY")
    for i in range(N_LINES):
        db.execute("INSERT OR IGNORE INTO source(name, kind) VALUES (?, 'audio')", ("l%03d" % i,))
    schema = db.execute("SELECT type, name, sql FROM sqlite_master WHERE tbl_name = 'call'"
                        " AND type IN ('index', 'trigger') AND sql IS NOT NULL").fetchall()
    db.execute("BEGIN")
    for kind, name, _ in schema:
        db.execute("DROP %s %s" % (kind.upper(), name))
    # lookup tables: lines, customers (numbers and their reversed digits),
    # and word slots drawn Zipf-like from the vocabulary
    db.execute("CREATE TEMP TABLE g_line(i INTEGER PRIMARY KEY, sid, ext, rev)")
    db.executemany("INSERT INTO g_line SELECT ?, id, ?, ? FROM source WHERE name = ?",
                   [(i, "%d" % (1000 + i), rev_digits("%d" % (1000 + i)), "l%03d" % i)
                    for i in range(N_LINES)])
    db.execute("CREATE TEMP TABLE g_cust(i INTEGER PRIMARY KEY, num, rev)")
    db.executemany("INSERT INTO g_cust VALUES (?, ?, ?)",
                   ((i, customer(i), rev_digits(customer(i))) for i in range(N_CUSTOMERS)))
    weights = [1.0 / (k + 1) for k in range(len(words))]
    db.execute("CREATE TEMP TABLE g_word(i INTEGER PRIMARY KEY, w)")
    db.executemany("INSERT INTO g_word VALUES (?, ?)",
                   enumerate(rng.choices(words, weights, k=10007)))
    start_us = end_us - DAYS * DAY_US
    step = DAYS * DAY_US // n_calls
    word = lambda j: "(SELECT w FROM g_word WHERE i = %s)" % h(20 + j, 10007)
    notes = ("CASE WHEN %s = 0 THEN %s ELSE '' END"
             % (h(3, 10), " || ".join(
                 [word(0), "' '", word(1), "' '", word(2)] +
                 ["CASE WHEN %s > %d THEN ' ' || %s ELSE '' END" % (h(4, 6), j, word(3 + j))
                  for j in range(5)])))
    tags = ("CASE WHEN %s = 0 THEN '[\"' || CASE %s WHEN 0 THEN 'vip' WHEN 1 THEN 'complaint'"
            " WHEN 2 THEN 'loan' WHEN 3 THEN 'card' ELSE 'callback' END || '\"]' ELSE '[]' END"
            % (h(5, 10), h(6, 5)))
    # direction: 70 % in, 25 % out, 5 % internal
    db.execute(
        "INSERT INTO call(call_id, source_id, start_us, end_us, direction, caller, caller_raw,"
        " caller_rev, callee, callee_raw, callee_rev, agent, queue, account, disposition, tags,"
        " notes, origin, created_us, updated_us)"
        " SELECT 'g' || k.n, l.sid, s, s + dur * 1000000, d,"
        "  CASE d WHEN 'in' THEN c.num ELSE l.ext END, CASE d WHEN 'in' THEN c.num ELSE l.ext END,"
        "  CASE d WHEN 'in' THEN c.rev ELSE l.rev END,"
        "  CASE d WHEN 'in' THEN l.ext WHEN 'out' THEN c.num ELSE l2.ext END,"
        "  CASE d WHEN 'in' THEN l.ext WHEN 'out' THEN c.num ELSE l2.ext END,"
        "  CASE d WHEN 'in' THEN l.rev WHEN 'out' THEN c.rev ELSE l2.rev END,"
        "  printf('agent%03d', " + h(7, N_AGENTS) + "), printf('q%02d', " + h(8, N_QUEUES) +
        "), printf('ACC-%06d', " + h(9, 200000) + "), 'ANSWERED', " + tags + ", " + notes +
        ", 'pbx', s, s"
        " FROM (WITH RECURSIVE k(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM k WHERE n < ?)"
        "  SELECT n, ? + n * ? + " + h(10, step) + " AS s,"
        "   MIN(3600, MAX(5, " + h(11, 360) + " + " + h(12, 2) + " * " + h(13, 300) + ")) AS dur,"
        "   CASE WHEN " + h(14, 100) + " < 70 THEN 'in' WHEN " + h(14, 100) +
        " < 95 THEN 'out' ELSE 'internal' END AS d, " + h(15, N_LINES) + " AS line, " +
        h(16, N_CUSTOMERS) + " AS cust, " + h(17, N_LINES) + " AS line2 FROM k) AS k"
        " JOIN g_line l ON l.i = k.line JOIN g_line l2 ON l2.i = k.line2"
        " JOIN g_cust c ON c.i = k.cust",
        (n_calls - 1, start_us, step))
    # the text key the insert trigger gives a call with notes or tags (schema
    # v20): start-major, a sequence among the calls of one microsecond
    db.execute("UPDATE call SET fts_key = k.key FROM (SELECT id, start_us * 2048 - 1"
               " + row_number() OVER (PARTITION BY start_us ORDER BY id) AS key FROM call"
               " WHERE notes <> '' OR tags <> '[]') AS k WHERE call.id = k.id")
    for kind, _, sql in sorted(schema, key=lambda x: x[0]):  # indexes, then triggers
        db.execute(sql)
    db.execute("INSERT INTO call_fts(rowid, notes, tags) SELECT fts_key, notes, tags FROM call"
               " WHERE fts_key IS NOT NULL")
    db.execute("COMMIT")
    db.execute("PRAGMA journal_mode = WAL")
    n = db.execute("SELECT COUNT(*) FROM call").fetchone()[0]
    db.close()
    return n


def pct(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100.0 * (len(v) - 1))))]


def query_lines(rng, end_us, words):
    def day():
        d = end_us - rng.randrange(1, DAYS) * DAY_US
        return d, d + DAY_US

    out = []
    for _ in range(QUERIES):
        out.append("number %s" % customer(rng.randrange(N_CUSTOMERS)))
    for _ in range(QUERIES):
        out.append("suffix %04d" % rng.randrange(10000))
    for _ in range(QUERIES):
        out.append("agent agent%03d %d %d" % ((rng.randrange(N_AGENTS),) + day()))
    for _ in range(QUERIES):
        out.append("text %s" % words[rng.randrange(20, 400)])
    for _ in range(QUERIES // 3):
        out.append("newest")
    # each filter within one day, and the second page (the cursor)
    for _ in range(QUERIES // 3):
        out.append("number+day %s %d %d" % ((customer(rng.randrange(N_CUSTOMERS)),) + day()))
        out.append("suffix+day %04d %d %d" % ((rng.randrange(10000),) + day()))
        out.append("text+day %s %d %d" % ((words[rng.randrange(20, 400)],) + day()))
        out.append("p2-suffix %04d" % rng.randrange(10000))
        out.append("p2-text %s" % words[rng.randrange(20, 400)])
        out.append("p2-agent agent%03d %d %d" % ((rng.randrange(N_AGENTS),) + day()))
        out.append("p2-newest -")
    rng.shuffle(out)
    return out


def run_queries(build, db, lines):
    p = subprocess.run([os.path.join(build, "bench", "calls_query"), db], input="\n".join(lines),
                       capture_output=True, text=True, check=True)
    by = {}
    for line in p.stdout.splitlines():
        kind, us, n, rc, cpu = line.split()
        assert rc == "0", line
        by.setdefault(kind, []).append((int(us) / 1000.0, int(n), int(cpu) / 1000.0))
    return by


PBX_LUA = """
local n = 0
local tid = 0
local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("tid", counter)
end
init = function(args)
  tid = wrk.thread:get("tid")
  wrk.headers["Content-Type"] = "application/json"
end
request = function()
  n = n + 1
  local body = string.format('{"call_id":"bench-%%d-%%d","source":"l%%03d","start":%d,'
    .. '"direction":"in","caller":"+7912%%07d","callee":"1001","agent":"agent001"}',
    tid, n, n %% 200, n)
  return wrk.format("POST", "/api/v1/calls", nil, body)
end
"""

SEARCH_LUA = """
local paths = {%s}
local i = 0
init = function(args)
  i = tonumber(tostring({}):match("0x(%%x+)"), 16) %% #paths
end
request = function()
  i = i %% #paths + 1
  return wrk.format(nil, paths[i])
end
"""


def cpu_s(pid):
    """User + system CPU seconds of a process so far (/proc/PID/stat)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid):
    """The process's peak resident set (VmHWM) so far, in MB."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def http_import(base, token, path):
    """POST path to the import route, the body read from the file as it is
    sent (Content-Length known): returns (seconds, report)."""
    import http.client
    import urllib.parse
    u = urllib.parse.urlparse(base)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=3600)
    t0 = time.monotonic()
    with open(path, "rb") as f:
        conn.request("POST", "/api/v1/calls/import?format=asterisk-csv", body=f,
                     headers={"Authorization": "Bearer " + token, "Content-Type": "text/csv",
                              "Content-Length": str(os.path.getsize(path))})
        resp = conn.getresponse()
        body = resp.read()
    took = time.monotonic() - t0
    conn.close()
    if resp.status != 200:
        raise SystemExit("bench_calls: the HTTP import answered %d: %s" % (resp.status, body))
    return took, json.loads(body)


def write_csv(path, n, end_us, rng, prefix="imp"):
    t0 = end_us / 1000000 - 30 * 86400
    with open(path, "w") as f:
        for k in range(n):
            line = rng.randrange(N_LINES)
            s = t0 + k * 2
            st = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(s))
            en = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(s + 95))
            f.write('"ACC-%d","%s","%d","from-trunk","","SIP/trunk-%08x","SIP/%d-%08x",'
                    '"Queue","support,t","%s","%s","%s","95","90","ANSWERED","3",'
                    '"%s.%d",""\n' % (k, customer(rng.randrange(N_CUSTOMERS))[1:], 1000 + line,
                                      k, 1000 + line, k, st, st, en, prefix, k))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--results", default="bench/RESULTS.md")
    ap.add_argument("--calls", type=int, default=5000000)
    ap.add_argument("--csv-rows", type=int, default=1000000)
    ap.add_argument("--seconds", type=int, default=15)
    ap.add_argument("--dir", default=None,
                    help="work here and keep it; an index generated there before is reused")
    ap.add_argument("--generate-only", action="store_true",
                    help="stop once the calls are loaded (with --dir: measure later, e.g. "
                    "once the machine is quiet)")
    args = ap.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("bench_calls: wrk is not installed (make deps)")
    root = args.dir or tempfile.mkdtemp(prefix="vigil-bench-calls-")
    data = os.path.join(root, "data")
    os.makedirs(data, exist_ok=True)
    conf = os.path.join(root, "vigil.conf")
    with open(conf, "w") as f:
        f.write("[server]\ndata_dir = %s\nlog_level = warning\ntimezone = Europe/Moscow\n"
                "[retention]\nmin_days = 60\nkeep_days = 3650\n" % data)
        for i in range(N_LINES):
            f.write("[source l%03d]\nurl = rtsp://127.0.0.1:1/none\nkind = audio\n"
                    "pbx_extension = %d\n" % (i, 1000 + i))
    rng = random.Random(16)
    words = vocabulary(rng)
    ctl = [os.path.join(args.build, "vigilctl"), "-c", conf]
    run = os.getpid()  # token names: a reused index keeps earlier runs' tokens
    pbx = subprocess.run(ctl + ["token", "add", "pbx-%d" % run, "--perm", "pbx"],
                         capture_output=True, text=True, check=True).stdout.strip()
    reader = subprocess.run(ctl + ["token", "add", "reader-%d" % run, "--perm", "calls"],
                            capture_output=True, text=True, check=True).stdout.strip()
    db = os.path.join(data, "index.db")
    kept = generated(root, args.calls)
    if kept:
        end_us, n, gen_s = kept["end_us"], kept["n"], kept["gen_s"]
    else:
        end_us = int(time.time()) * 1000000
        t0 = time.monotonic()
        n = generate(db, args.calls, end_us, rng, words)
        gen_s = time.monotonic() - t0
        note_generated(root, calls=args.calls, end_us=end_us, n=n, gen_s=gen_s)
    if args.generate_only:
        print("generated %d calls in %.0f s: %s" % (n, gen_s, root))
        return
    os.sync()
    db_mb = sum(os.path.getsize(os.path.join(data, f)) for f in os.listdir(data)
                if f.startswith("index.db")) / 1e6
    lines = query_lines(rng, end_us, words)
    run_queries(args.build, db, lines)  # the first pass warms the page cache
    by = run_queries(args.build, db, lines)
    stats = {}
    for kind, v in sorted(by.items()):
        ms = [x[0] for x in v]
        stats[kind] = (len(v), pct(ms, 50), pct(ms, 99), max(ms),
                       pct([x[2] for x in v], 99), statistics.mean(x[1] for x in v))

    procs = []
    try:
        port = free_port()
        procs.append(subprocess.Popen([os.path.join(args.build, "bench", "webserve"), conf,
                                       "127.0.0.1:%d" % port], stdout=subprocess.PIPE, text=True))
        assert procs[-1].stdout.readline().startswith("READY")
        base = "http://127.0.0.1:%d" % port
        wait_url(base + "/api/v1/calls?limit=1", {"Authorization": "Bearer " + reader})
        paths = ",".join('"/api/v1/calls?number=%%2B%s"' % customer(rng.randrange(N_CUSTOMERS))[1:]
                         for _ in range(500))
        script = os.path.join(root, "search.lua")
        with open(script, "w") as f:
            f.write(SEARCH_LUA % paths)
        args4 = ["wrk", "-t2", "-c4", "-d%ds" % args.seconds, "--latency", "-H",
                 "Authorization: Bearer " + reader, "-s", script, base + "/"]
        out = subprocess.run(args4, capture_output=True, text=True, check=True).stdout
        http_rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
        m = re.search(r"\s99%\s+([\d.]+)(us|ms|s)\b", out)
        http_p99 = float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]

        before = sqlite3.connect(db).execute("SELECT COUNT(*) FROM call").fetchone()[0]
        script = os.path.join(root, "pbx.lua")
        with open(script, "w") as f:
            f.write(PBX_LUA % (end_us // 1000000 - 3600))
        load0 = os.getloadavg()[0]
        cpu0 = cpu_s(procs[0].pid)
        ing = wrk(base + "/", args.seconds, token=pbx, script=script)
        ing_cpu = cpu_s(procs[0].pid) - cpu0
        load1 = os.getloadavg()[0]
        after = sqlite3.connect(db).execute("SELECT COUNT(*) FROM call").fetchone()[0]
        ing_us = ing_cpu * 1e6 / max(1, after - before)

        # the same import over HTTP, into the same index (other uniqueids)
        csv_http = os.path.join(root, "Master-http.csv")
        write_csv(csv_http, args.csv_rows, end_us, random.Random(17), prefix="http")
        rss0 = peak_rss_mb(procs[0].pid)
        http_s, http_rep = http_import(base, pbx, csv_http)
        http_rss = peak_rss_mb(procs[0].pid)
        os.unlink(csv_http)
    finally:
        for p in procs:
            p.terminate()
            p.wait(30)

    csv = os.path.join(root, "Master.csv")
    write_csv(csv, args.csv_rows, end_us, rng)
    csv_mb = os.path.getsize(csv) / 1e6
    t0 = time.monotonic()
    p = subprocess.Popen(ctl + ["calls", "import", "--format", "asterisk-csv", csv],
                         stdout=subprocess.PIPE, text=True)
    out = p.stdout.read()
    _, status, usage = os.wait4(p.pid, 0)  # this child's own peak RSS
    p.returncode = os.waitstatus_to_exitcode(status)
    imp_s = time.monotonic() - t0
    if p.returncode != 0:
        raise SystemExit("bench_calls: vigilctl calls import failed")
    imp_rss = usage.ru_maxrss / 1024.0
    rep = json.loads(out)

    names = {"number": "by number (caller or callee)", "suffix": "by trailing 4 digits",
             "agent": "by agent and day", "text": "by a word of the notes (FTS5)",
             "newest": "newest page, no filter", "number+day": "by number, one day",
             "suffix+day": "by trailing 4 digits, one day", "text+day": "by a word, one day",
             "p2-suffix": "by trailing 4 digits, second page",
             "p2-text": "by a word, second page", "p2-agent": "by agent and day, second page",
             "p2-newest": "newest, second page"}
    table = "\n".join("| %s | %d | %.2f | %.2f | %.2f | %.2f | %.0f |" % ((names[k],) + s)
                      for k, s in stats.items())
    text = (SECTION + "\n\n"
            "Run %s on this machine (%d cores, shared). %d calls over %d days on %d lines, "
            "loaded in %.0f s into the schema's tables, indexes and FTS5 triggers (index "
            "%.0f MB); no ANALYZE (vigil does not run it).\n\n"
            "Search through the index API (`idx_call_search`, one page of 50, the second of "
            "two passes over the same %d queries):\n\n"
            "| query | n | p50 ms | p99 ms | max ms | CPU p99 ms | rows |\n"
            "|---|---|---|---|---|---|---|\n%s\n\n"
            "Over HTTP (webserve, wrk 4 connections, number search, every request also "
            "commits its `call.search` audit row): %.0f requests/s, p99 %.1f ms.\n\n"
            "PBX events over HTTP (`POST /api/v1/calls`, a new call each, wrk 64 "
            "keep-alive connections, each 201 a committed row with its audit row, synchronous = "
            "FULL): **%.0f events/s**, p99 %.1f ms, %d new rows, %d non-2xx; the server "
            "spent %.0f us of CPU per event; load average %.1f at the start, %.1f at the "
            "end.\n\n"
            "`vigilctl calls import` of a %d-row Master.csv (%.0f MB) into that index: "
            "%.1f s (%.0f rows/s), peak RSS %.0f MB: imported %d, merged %d, unmatched %d, "
            "bad %d.\n\n"
            "The same size over HTTP (`POST /api/v1/calls/import`, the file streamed, other "
            "uniqueids): %.1f s (%.0f rows/s), the server's peak RSS %.0f MB (%.0f MB before "
            "the import): imported %d, merged %d, unmatched %d, bad %d.\n"
            % (time.strftime("%Y-%m-%d"), os.cpu_count(), n, DAYS, N_LINES, gen_s, db_mb,
               len(lines), table, http_rps, http_p99, ing["rps"], ing["p99_ms"],
               after - before, ing["non2xx"], ing_us, load0, load1, args.csv_rows, csv_mb,
               imp_s, args.csv_rows / imp_s, imp_rss, rep["imported"], rep["merged"],
               rep["unmatched"], rep["bad"], http_s, args.csv_rows / http_s, http_rss, rss0,
               http_rep["imported"], http_rep["merged"], http_rep["unmatched"],
               http_rep["bad"]))
    write_section(args.results, SECTION, text)
    print(text)
    if not args.dir:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
