#!/usr/bin/env python3
"""Integration tests of the contact centre's calls (README "Contact centre"):
one camera simulator and one vigild shared by every test (2 s segments), two
audio lines (/line-pcma with pbx_extension 101, /line-pcmu with 102) and a
camera (/h264) on the first line's desk. PBX events over HTTP (start, end,
duplicates, out of order, bad input that writes nothing), an Asterisk
Master.csv with realistic rows (unmatched lines, a bad row mid-file) over
HTTP and through vigilctl, number normalization, every search filter and
cursor paging, one audit row per listen, require_access_reason on and off
(through a reload of the same vigild), the desk's cameras in a call and the
calls on the camera's timeline, a hold by call that keeps its segments
through a retention sweep, a subject-access bundle checked with minisign,
and the security role's 403/404.

The index is read with sqlite3 as an outside observer where the API would
hide what is being checked (nothing written after a refused event).
Ends with "N passed, N failed".
"""
import argparse
import concurrent.futures
import csv
import io
import json
import os
import random
import socket
import sqlite3
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import zipfile

import integration
from integration import Camsim, log, parse_time, run_tests, wait_for
from integration_web import PASSWORD, Client, WebVigil, free_port, wait_http

LINE_A, LINE_B, CAM = "line-a", "line-b", "hall"


def iso(t):
    """unix seconds (float) -> RFC 3339 with ms."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%03dZ" % int((t % 1) * 1000)


def q(**kw):
    return urllib.parse.urlencode(kw)


class Suite:
    def __init__(self, tmp):
        self.tmp = tmp
        self.cam = Camsim()
        self.port = free_port()
        self.v = WebVigil(os.path.join(tmp, "v"),
                          [(LINE_A, self.cam.url("line-pcma"), "audio"),
                           (LINE_B, self.cam.url("line-pcmu"), "audio"),
                           (CAM, self.cam.url("h264"), "video")],
                          "http_listen = 127.0.0.1:%d\ntimezone = Europe/Moscow\n" % self.port,
                          extra="[retention]\nmin_days = 1\nkeep_days = 1\n")
        with open(self.v.conf) as f:
            text = f.read()
        text = text.replace("[source %s]\n" % LINE_A, "[source %s]\npbx_extension = 101\n" % LINE_A)
        text = text.replace("[source %s]\n" % LINE_B, "[source %s]\npbx_extension = 102\n" % LINE_B)
        text += "[desk desk-1]\nlines = %s\ncameras = %s\n" % (LINE_A, CAM)
        with open(self.v.conf, "w") as f:
            f.write(text)
        self.conf_text = text
        users = (("admin", "admin", None), ("aud", "auditor", None),
                 ("inv", "investigator", None), ("sec", "security", None),
                 ("narrow", "auditor", LINE_B), ("officer", "officer", None))
        self.pbx_token = self.v.ctl("token", "add", "pbx", "--perm", "pbx").stdout.strip()
        # password hashing is slow: the accounts are made (and logged in) a few at a time
        with concurrent.futures.ThreadPoolExecutor(3) as ex:
            list(ex.map(lambda u: self.v.add_user(u[0], u[1], sources=u[2]), users))
        self.v.start()
        try:
            self.started(users)
        except BaseException:
            self.close(check=False)
            raise

    def started(self, users):
        wait_http(self.port)
        self.c = {u[0]: Client(self.port) for u in users}
        with concurrent.futures.ThreadPoolExecutor(3) as ex:
            list(ex.map(lambda u: self.c[u[0]].login(u[0]), users))
        self.pbx = Client(self.port)
        self.pbx.token = self.pbx_token
        wait_for("three segments of every source",
                 lambda: all(len(self.v.segments(s)) >= 3 for s in (LINE_A, LINE_B, CAM)), 60)
        self.db = os.path.join(self.v.data, "index.db")
        self.seq = 0
        self.spans = {}

    def close(self, check=True):
        """Stops both; vigild must exit 0 (under ASan: no leak, no error report)."""
        code, _ = self.v.stop()
        self.cam.stop()
        if check and code != 0:
            tail = [l for l in self.v.log_text().splitlines()
                    if "Sanitizer" in l or "runtime error" in l or "ERROR" in l][:20]
            raise AssertionError("vigild exited %s\n%s" % (code, "\n".join(tail)))

    # -- helpers
    def recorded(self, source):
        """(start, end) of the middle of what source had recorded when first asked: a call
        there has audio."""
        if source not in self.spans:
            segs = self.v.segments(source)
            self.spans[source] = (parse_time(segs[1]["start"]) + 0.2,
                                  parse_time(segs[2]["end"]) - 0.2)
        return self.spans[source]

    def call_id(self):
        self.seq += 1
        return "1764%06d.%d" % (os.getpid() % 1000000, self.seq)

    def post(self, body, client=None):
        return (client or self.pbx).request("POST", "/api/v1/calls", body)

    def new_call(self, **kw):
        src = kw.get("source", LINE_A)
        start, end = self.recorded(src)
        body = {"call_id": self.call_id(), "source": src, "start": iso(start), "end": iso(end)}
        body.update(kw)
        st, ans, _ = self.post(body)
        assert st == 201, (st, ans)
        return ans["id"], body

    def rows(self, sql, *args):
        con = sqlite3.connect("file:%s?mode=ro" % self.db, uri=True, timeout=10)
        try:
            return con.execute(sql, args).fetchall()
        finally:
            con.close()

    def search(self, user, **kw):
        st, body, _ = self.c[user].request("GET", "/api/v1/calls?" + q(**kw))
        assert st == 200, (st, body)
        return body

    def audit(self, action, obj=None):
        rows = self.rows("SELECT object, detail FROM audit WHERE action = ?", action)
        return [r for r in rows if obj is None or r[0] == obj]

    # -- PBX events
    def test_pbx_start_end_duplicate(self):
        start, end = self.recorded(LINE_A)
        cid = self.call_id()
        ev = {"call_id": cid, "source": LINE_A, "start": iso(start), "direction": "in",
              "caller": "8 (912) 345-67-89", "callee": "101", "agent": "ivanova",
              "queue": "credit", "account": "ACC-1", "announcement": True}
        st, a, _ = self.post(ev)
        assert st == 201 and a["created"] is True, (st, a)
        st, b, _ = self.post(ev)  # the same event again
        assert st == 200 and b["id"] == a["id"] and b["created"] is False, (st, b)
        assert len(self.rows("SELECT id FROM call WHERE call_id = ?", cid)) == 1
        st, c, _ = self.pbx.request("PATCH", "/api/v1/calls/%d" % a["id"],
                                    {"end": iso(end), "disposition": "ANSWERED"})
        assert st == 200, (st, c)
        assert c["end"] and c["disposition"] == "ANSWERED" and c["caller"] == "+79123456789", c
        assert c["caller_raw"] == "8 (912) 345-67-89" and c["origin"] == "pbx", c
        assert c["announcement_pbx"] is True, c
        assert self.audit("call.create", "call:%d" % a["id"]), "no call.create row"
        assert self.audit("call.update", "call:%d" % a["id"]), "no call.update row"

    def test_pbx_concurrent_events_durable_through_kill9(self):
        """200 PBX events at once from 32 threads (they share the group commit's
        transactions): duplicates of some call_ids, and events that fail inside a
        batch (a call_id of the other line: 409, its savepoint rolled back).
        Every event answered, one call per call_id, the chain verifies, and a
        kill -9 right after the answers loses none of them."""
        start, end = self.recorded(LINE_A)
        taken, taken_ids = [self.call_id() for _ in range(5)], []
        for cid in taken:  # made first: in the burst they are the other line's
            st, a, _ = self.post({"call_id": cid, "source": LINE_A, "start": iso(start)})
            assert st == 201, (st, a)
            taken_ids.append(a["id"])
        events, i = [], 0
        while len(events) < 195:
            cid = self.call_id()
            events.append({"call_id": cid, "source": LINE_A, "start": iso(start),
                           "agent": "a%d" % i})
            if i % 3 == 0:  # its end, racing the start
                events.append({"call_id": cid, "source": LINE_A, "start": iso(start),
                               "end": iso(end), "disposition": "ANSWERED"})
            if i % 5 == 0:  # the same event again
                events.append({"call_id": cid, "source": LINE_A, "start": iso(start)})
            i += 1
        events = events[:190] + [{"call_id": cid, "source": LINE_B, "start": iso(start)}
                                 for cid in taken]
        # and PATCHes of those calls, twice each
        events += [{"patch": i, "disposition": "BUSY"} for i in taken_ids for _ in (0, 1)]
        random.Random(16).shuffle(events)

        def send(ev):
            if "patch" in ev:
                st, ans, _ = self.pbx.request("PATCH", "/api/v1/calls/%d" % ev["patch"],
                                              {"disposition": ev["disposition"]})
            else:
                st, ans, _ = self.post(ev)
            return ev, st, ans

        with concurrent.futures.ThreadPoolExecutor(32) as ex:
            answers = list(ex.map(send, events))
        # kill -9 right after the answers: everything below is read after the restart
        self.v.proc.kill()
        self.v.proc.wait()
        self.v.logfile.close()
        self.v.start()
        wait_http(self.port)
        by_cid = {}
        for ev, st, ans in answers:
            if "patch" in ev:
                assert st == 200 and ans["disposition"] == "BUSY", (st, ans)
                continue
            if ev["call_id"] in taken:
                assert st == 409 and ans["error"]["code"] == "call_id_conflict", (st, ans)
                continue
            assert st in (200, 201), (st, ans)
            by_cid.setdefault(ev["call_id"], []).append((st, ans["id"]))
        for cid, got in by_cid.items():
            assert sum(1 for st, _ in got if st == 201) == 1, (cid, got)
            assert len({i for _, i in got}) == 1, (cid, got)
        for cid in list(by_cid) + taken:
            rows = self.rows("SELECT s.name FROM call c JOIN source s ON s.id = c.source_id "
                             "WHERE c.call_id = ?", cid)
            assert rows == [(LINE_A,)], (cid, rows)
        # one audit row per event that was answered 200/201, none for a refused one
        details = [d for (d,) in self.rows("SELECT detail FROM audit WHERE action IN "
                                           "('call.create', 'call.update')")]
        for cid, got in by_cid.items():
            n = sum(1 for d in details if d == "source=%s call_id=%s" % (LINE_A, cid))
            assert n == len(got), (cid, n, got)
        for cid in taken:
            assert "source=%s call_id=%s" % (LINE_B, cid) not in details, cid
        for i in taken_ids:
            assert len(self.audit("call.update", "call:%d" % i)) == 2, i
            st, c, _ = self.c["aud"].request("GET", "/api/v1/calls/%d" % i)
            assert st == 200 and c["disposition"] == "BUSY", (st, c)
        for cid, got in by_cid.items():
            st, c, _ = self.c["aud"].request("GET", "/api/v1/calls/%d" % got[0][1])
            assert st == 200 and c["call_id"] == cid, (cid, st, c)
        st, ver, _ = self.c["admin"].request("GET", "/api/v1/audit/verify")
        assert st == 200 and ver["ok"] is True, (st, ver)

    def test_pbx_out_of_order(self):
        """The end event (with its start) before the start event: one call, end kept."""
        start, end = self.recorded(LINE_A)
        cid = self.call_id()
        st, a, _ = self.post({"call_id": cid, "source": LINE_A, "start": iso(start),
                              "end": iso(end), "disposition": "ANSWERED"})
        assert st == 201, (st, a)
        st, b, _ = self.post({"call_id": cid, "source": LINE_A, "start": iso(start),
                              "caller": "+7 912 000 11 22"})
        assert st == 200 and b["id"] == a["id"], (st, b)
        st, c, _ = self.c["aud"].request("GET", "/api/v1/calls/%d" % a["id"])
        assert st == 200 and c["end"] is not None, c
        assert c["caller"] == "+79120001122" and c["disposition"] == "ANSWERED", c
        # an end arriving for an unknown vigil id is a 404 and writes nothing
        st, _, _ = self.pbx.request("PATCH", "/api/v1/calls/999999999", {"end": iso(end)})
        assert st == 404, st

    def test_pbx_bad_input_writes_nothing(self):
        start, end = self.recorded(LINE_A)
        before = self.rows("SELECT count(*) FROM call")[0][0]
        base = {"call_id": self.call_id(), "source": LINE_A, "start": iso(start)}
        cases = [
            ({"source": "no-such-line"}, "unknown_source"),
            ({"source": CAM}, "not_audio"),
            ({"end": iso(start - 10)}, "invalid_range"),
            ({"start": True}, "invalid_field"),
            ({"tags": "vip"}, "invalid_field"),
            ({"caller": 79123456789}, "invalid_field"),
            ({"notes": "x" * 5000}, "invalid_field"),
            ({"agent": "a" * 200}, "invalid_field"),
            ({"direction": "sideways"}, "invalid_field"),
            ({"unknown": 1}, "unknown_field"),
            ({"start": None}, "invalid_field"),
        ]
        for patch, code in cases:
            body = dict(base)
            body.update(patch)
            st, ans, _ = self.post(body)
            assert st == 400 and ans["error"]["code"] == code, (patch.keys(), st, ans)
        st, ans, _ = self.pbx.request("POST", "/api/v1/calls", None)
        assert st == 400, (st, ans)
        assert self.rows("SELECT count(*) FROM call")[0][0] == before
        # no pbx permission: an auditor cannot create calls
        st, _, _ = self.post(base, self.c["aud"])
        assert st == 403, st
        # annotate may change notes and tags only
        cid, _ = self.new_call()
        st, ans, _ = self.c["aud"].request("PATCH", "/api/v1/calls/%d" % cid, {"agent": "x"})
        assert st == 403, (st, ans)
        st, ans, _ = self.c["aud"].request("PATCH", "/api/v1/calls/%d" % cid,
                                           {"notes": "complaint about a loan", "tags": ["vip"]})
        assert st == 200 and ans["tags"] == ["vip"], (st, ans)

    # -- normalization and search
    def test_number_normalization(self):
        cid, _ = self.new_call(caller="+7 (912) 777-12-34", callee="102")
        for spelled in ("8 (912) 777-12-34", "+7 912 777 12 34", "9127771234", "79127771234"):
            found = [c["id"] for c in self.search("aud", number=spelled)["calls"]]
            assert cid in found, (spelled, found)
        found = [c["id"] for c in self.search("aud", number="*71234")["calls"]]
        assert cid in found, found
        # a short extension is kept as it is; the import test's thousands of
        # calls to 102 may start after this one (its line's recording began
        # later): follow the cursor
        found, after = [], None
        for _ in range(20):
            page = self.search("aud", number="102", limit=500,
                               **({"after": after} if after else {}))
            found += [c["id"] for c in page["calls"]]
            after = page["next"]
            if cid in found or not after:
                break
        assert cid in found, len(found)
        for bad in ("abc", "*", "*12a", "+7 912 77 77 12 34 56 78 99"):
            st, ans, _ = self.c["aud"].request("GET", "/api/v1/calls?" + q(number=bad))
            assert st == 400 and ans["error"]["code"] == "invalid_number", (bad, st, ans)

    def test_search_filters(self):
        tag = "f%d" % os.getpid()
        a, _ = self.new_call(agent="agent-" + tag, queue="q-" + tag, account="acc-" + tag,
                             direction="in", notes="customer asked about mortgage " + tag)
        start, end = self.recorded(LINE_A)
        b, _ = self.new_call(agent="agent-" + tag, queue="q2-" + tag, direction="out",
                             end=iso(start + 0.5), tags=["angry", tag])
        ids = lambda body: [c["id"] for c in body["calls"]]
        assert set(ids(self.search("aud", agent="agent-" + tag))) == {a, b}
        assert ids(self.search("aud", queue="q-" + tag)) == [a]
        assert ids(self.search("aud", account="acc-" + tag)) == [a]
        assert ids(self.search("aud", agent="agent-" + tag, direction="out")) == [b]
        assert ids(self.search("aud", agent="agent-" + tag, max_seconds="1")) == [b]
        assert ids(self.search("aud", agent="agent-" + tag, min_seconds="1")) == [a]
        assert ids(self.search("aud", text="mortgage " + tag)) == [a]
        assert ids(self.search("aud", text="angry")) and b in ids(self.search("aud", text="angry"))
        # FTS syntax in the text is taken as words, never an error
        for text in ('"unbalanced', "a OR", "notes:x", "NEAR(", "*"):
            st, ans, _ = self.c["aud"].request("GET", "/api/v1/calls?" + q(text=text))
            assert st == 200, (text, st, ans)
        assert ids(self.search("aud", agent="agent-" + tag, to=iso(start - 3600))) == []
        assert set(ids(self.search("aud", agent="agent-" + tag, **{"from": iso(start - 60)}))) \
            == {a, b}
        for key, bad in (("direction", "up"), ("min_seconds", "-1"), ("limit", "0"),
                         ("limit", "100000"), ("after", "x"), ("from", "yesterday")):
            st, ans, _ = self.c["aud"].request("GET", "/api/v1/calls?" + q(**{key: bad}))
            assert st == 400, (key, bad, st, ans)
        # a line the account may not see: its calls are not listed, the call is a 404
        assert a not in ids(self.search("narrow", agent="agent-" + tag))
        st, _, _ = self.c["narrow"].request("GET", "/api/v1/calls/%d" % a)
        assert st == 404, st
        assert self.audit("call.search"), "no call.search row"

    def test_cursor_paging(self):
        tag = "pager-%d" % os.getpid()
        made = {self.new_call(agent=tag)[0] for _ in range(7)}
        seen, after, pages = [], None, 0
        while True:
            kw = {"agent": tag, "limit": "3"}
            if after:
                kw["after"] = after
            body = self.search("aud", **kw)
            pages += 1
            seen += [c["id"] for c in body["calls"]]
            starts = [parse_time(c["start"]) for c in body["calls"]]
            assert starts == sorted(starts, reverse=True), starts
            after = body["next"]
            if not after:
                break
        assert pages == 3 and len(seen) == 7 and set(seen) == made, (pages, seen)

    # -- the CDR import
    def csv_rows(self, tag):
        """A Master.csv in the office's time zone (Moscow, UTC+3), during the recording."""
        start, end = self.recorded(LINE_B)
        local = lambda t: time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t + 3 * 3600))
        s, e = local(start), local(end)
        rows = [
            # inbound to 102 through a queue
            ['"ACC-%s"' % tag, '"89161234567"', '"102"', '"from-trunk"',
             '"""Petrov"" <89161234567>"', '"SIP/trunk-00000011"', '"SIP/102-00000012"',
             '"Queue"', '"support,t"', '"%s"' % s, '"%s"' % s, '"%s"' % e, '"9"', '"8"',
             '"ANSWERED"', '"DOCUMENTATION"', '"%s.1"' % tag, '""'],
            # outbound from 101 (PJSIP)
            ['""', '"101"', '"+74951112233"', '"from-internal"', '"""Agent"" <101>"',
             '"PJSIP/101-0000000a"', '"PJSIP/trunk-0000000b"', '"Dial"', '"PJSIP/trunk"',
             '"%s"' % s, '"%s"' % s, '"%s"' % e, '"9"', '"9"', '"ANSWERED"',
             '"DOCUMENTATION"', '"%s.2"' % tag, '""'],
            # a bad row in the middle: not a time
            ['""', '"1"', '"2"', '"x"', '""', '"SIP/101-1"', '""', '"Dial"', '""',
             '"yesterday"', '""', '"today"', '"1"', '"1"', '"ANSWERED"', '"3"',
             '"%s.3"' % tag, '""'],
            # unmatched: extension 555 is nobody's line
            ['""', '"555"', '"556"', '"x"', '""', '"SIP/555-00000001"', '"SIP/556-00000002"',
             '"Dial"', '""', '"%s"' % s, '""', '"%s"' % e, '"5"', '"0"', '"NO ANSWER"', '"3"',
             '"%s.4"' % tag, '""'],
            # a row with a broken quote
            ['"broken', '"1"'],
            # the first row again: merged, not duplicated
            None,
        ]
        lines = []
        for r in rows:
            lines.append(",".join(r) if r else lines[0])
        return "\n".join(lines) + "\n", start

    def check_report(self, rep, tag):
        assert rep["imported"] == 2 and rep["merged"] == 1, rep
        assert rep["unmatched"] == 1 and rep["bad"] == 2, rep
        lines = sorted(r["line"] for r in rep["reasons"])
        assert lines == [3, 4, 5], rep
        calls = self.search("aud", account="ACC-" + tag)["calls"]
        assert len(calls) == 1, calls
        c = calls[0]
        assert c["source"] == LINE_B and c["direction"] == "in" and c["queue"] == "support", c
        assert c["caller"] == "+79161234567" and c["origin"] == "import", c
        assert c["call_id"] == "%s.1" % tag, c
        return c

    def test_import_http(self):
        tag = "h%d" % os.getpid()
        text, start = self.csv_rows(tag)
        conn = self.c["admin"].conn()
        conn.request("POST", "/api/v1/calls/import?format=asterisk-csv", body=text.encode(),
                     headers={"Content-Type": "text/csv", "Cookie": self.c["admin"].cookie,
                              "X-Requested-With": "vigil"})
        r = conn.getresponse()
        rep = json.loads(r.read())
        conn.close()
        assert r.status == 200, (r.status, rep)
        c = self.check_report(rep, tag)
        # the times were read in Moscow time: the call starts where the line recorded
        assert abs(parse_time(c["start"]) - int(start)) < 1.5, (c["start"], start)
        # JSON is refused; the PBX token may import too
        st, ans, _ = self.c["admin"].request("POST", "/api/v1/calls/import", {"a": 1})
        assert st == 415, (st, ans)
        st, _, _ = self.c["aud"].request("POST", "/api/v1/calls/import", {"a": 1})
        assert st == 403, st
        assert self.audit("calls.import"), "no calls.import row"

    def test_import_large_leaves_http_threads_free(self):
        """A CDR import larger than the import's buffer (1 MiB) while a second
        SQLite connection holds the index's write lock: the import cannot
        finish, so every answer that comes meanwhile came from a thread it
        is not holding. Requests on keep-alive connections opened before it
        (spread over every HTTP thread, the import's own included) are all
        answered; then the lock goes, and the report counts every row."""
        tag = "L%d" % os.getpid()
        start, end = self.recorded(LINE_B)
        local = lambda t: time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t + 3 * 3600))
        s, e = local(start), local(end)
        rows = []
        n_ok = n_unmatched = 0
        for k in range(7000):
            ext = "102" if k % 10 else "559"  # one row in ten is nobody's line
            rows.append('"%s","89161234567","%s","from-trunk","","SIP/trunk-%08x","SIP/%s-%08x",'
                        '"Queue","support,t","%s","%s","%s","9","8","ANSWERED","3",'
                        '"%s.%d","%s"' % (tag, ext, k, ext, k, s, s, e, tag, k, "x" * 120))
            n_ok += ext == "102"
            n_unmatched += ext != "102"
        rows.insert(3500, '"a broken row')
        body = ("\n".join(rows) + "\n").encode()
        assert len(body) > 1 << 20, len(body)
        # keep-alive connections, each answered once before the import
        probes = []
        for _ in range(12):
            conn = self.c["aud"].conn()
            st, _, _ = self.c["aud"].request("GET", "/healthz", conn=conn)
            assert st == 200, st
            probes.append(conn)
        lock = sqlite3.connect(self.db, timeout=10, isolation_level=None)
        lock.execute("BEGIN IMMEDIATE")
        locked = True
        answer = {}

        def send():
            conn = self.c["admin"].conn()
            conn.timeout = 120
            try:
                conn.request("POST", "/api/v1/calls/import?format=asterisk-csv", body=body,
                             headers={"Content-Type": "text/csv", "Cookie": self.c["admin"].cookie,
                                      "X-Requested-With": "vigil"})
                answer["sent"] = time.monotonic()
                r = conn.getresponse()
                answer["status"], answer["body"] = r.status, json.loads(r.read())
            except Exception as ex:  # reported by the assertions below
                answer["error"] = repr(ex)
            finally:
                conn.close()
        t = threading.Thread(target=send, daemon=True)
        try:
            t.start()
            wait_for("the import's body sent", lambda: "sent" in answer or "error" in answer, 20,
                     interval=0.05)
            # The import may still be receiving its body: ask every connection
            # again and again for a second (each answer within the client's
            # timeout), so the asking also covers the time it spends waiting
            # for the lock. A thread it held would leave its connections
            # unanswered until the lock goes, which is after this loop.
            rounds = 0
            while rounds < 3 or time.monotonic() - answer["sent"] < 1.0:
                for conn in probes:
                    st, _, _ = self.c["aud"].request("GET", "/healthz", conn=conn)
                    assert st == 200, st
                rounds += 1
            # a second import meanwhile is refused, and says when to try again
            c2 = self.c["admin"].conn()
            c2.request("POST", "/api/v1/calls/import", body=b"x\n",
                       headers={"Content-Type": "text/csv", "Cookie": self.c["admin"].cookie,
                                "X-Requested-With": "vigil"})
            r2 = c2.getresponse()
            r2.read()
            c2.close()
            assert r2.status == 503 and r2.getheader("Retry-After"), r2.status
            assert "status" not in answer, answer  # it could not have finished
            lock.execute("ROLLBACK")
            locked = False
        finally:
            if locked:
                lock.execute("ROLLBACK")
            lock.close()
            for conn in probes:
                conn.close()
        t.join(120)
        assert answer.get("status") == 200, answer
        rep = answer["body"]
        assert rep["imported"] == n_ok and rep["unmatched"] == n_unmatched, rep
        assert rep["bad"] == 1 and rep["merged"] == 0, rep
        assert self.rows("SELECT COUNT(*) FROM call WHERE account = ?", tag)[0][0] == n_ok

    def test_import_long_lets_audited_requests_through(self):
        """A vigilctl import of many rows holds the index's write lock batch
        after batch: vigild's audited requests (each commits its audit row
        before it is answered) must still get in between. Before, SQLite's
        waits slept up to 100 ms a try and never landed in the importer's
        microsecond gaps: they timed out after 5 s and answered 500."""
        tag = "W%d" % os.getpid()
        start, end = self.recorded(LINE_B)
        local = lambda t: time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t + 3 * 3600))
        s, e = local(start), local(end)
        path = os.path.join(self.tmp, "long.csv")
        with open(path, "w") as f:
            for k in range(22000):
                f.write('"%s","89161234567","102","from-trunk","","SIP/trunk-%08x","SIP/102-%08x",'
                        '"Queue","support,t","%s","%s","%s","9","8","ANSWERED","3","%s.%d",""\n'
                        % (tag, k, k, s, s, e, tag, k))
        cid, _ = self.new_call(caller="+79990004455")
        p = subprocess.Popen([os.path.join(integration.BUILD, "vigilctl"), "-c", self.v.conf,
                              "calls", "import", "--format", "asterisk-csv", path],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        statuses = []
        t0 = time.monotonic()
        while p.poll() is None:
            st, body, _ = self.c["aud"].request("GET", "/api/v1/calls/%d" % cid)
            statuses.append(st)
            assert st == 200, (st, body, round(time.monotonic() - t0, 1))
        took = time.monotonic() - t0
        out, err = p.communicate()
        assert p.returncode == 0, err
        assert json.loads(out)["imported"] == 22000, out[:500]
        log("import of 22000 rows: %.1f s, %d audited requests answered meanwhile"
            % (took, len(statuses)))
        assert len(statuses) >= 3, statuses

    def test_import_cut_short_is_on_record(self):
        """A client that sends part of a large import and goes: the rows
        committed meanwhile stay, and the audit trail says so: a
        calls.import row "started" committed with the first of them, and
        one "error" with the counts once the import is abandoned."""
        tag = "X%d" % os.getpid()
        start, end = self.recorded(LINE_B)
        local = lambda t: time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t + 3 * 3600))
        s, e = local(start), local(end)
        part = "".join('"%s","89161234567","102","from-trunk","","SIP/trunk-%08x","SIP/102-%08x",'
                       '"Queue","support,t","%s","%s","%s","9","8","ANSWERED","3","%s.%d",""\n'
                       % (tag, k, k, s, s, e, tag, k) for k in range(6000)).encode()
        n0 = len(self.audit("calls.import"))
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=30)
        sock.sendall(("POST /api/v1/calls/import?format=asterisk-csv HTTP/1.1\r\nHost: x\r\n"
                      "Content-Type: text/csv\r\nCookie: %s\r\nX-Requested-With: vigil\r\n"
                      "Content-Length: %d\r\n\r\n" % (self.c["admin"].cookie, len(part) * 4)
                      ).encode())
        sock.sendall(part)
        wait_for("rows of the cut import committed", lambda: self.rows(
            "SELECT COUNT(*) FROM call WHERE account = ?", tag)[0][0] > 0, 30)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        t_cut = time.monotonic()
        sock.close()  # a reset: the server learns at once
        got = wait_for("the abandoned import on record", lambda: (lambda r: r if any(
            x[1].startswith("stopped") for x in r) else None)(
            self.rows("SELECT result, detail FROM audit WHERE action = 'calls.import' "
                      "ORDER BY id")[n0:]), 30)
        log("abandoned import on record %.1f s after the reset" % (time.monotonic() - t_cut))
        results = [x[0] for x in got]
        assert results[0] == "started" and "error" in results, got
        stored = self.rows("SELECT COUNT(*) FROM call WHERE account = ?", tag)[0][0]
        assert stored > 0, stored

    def test_import_vigilctl(self):
        tag = "c%d" % os.getpid()
        text, _ = self.csv_rows(tag)
        path = os.path.join(self.tmp, "Master.csv")
        with open(path, "w") as f:
            f.write(text)
        p = self.v.ctl("calls", "import", "--format", "asterisk-csv", path)
        self.check_report(json.loads(p.stdout), tag)
        p = self.v.ctl("calls", "import", path, check=False)  # no --format
        assert p.returncode == 2, p.returncode
        p = self.v.ctl("calls", "import", "--format", "asterisk-csv", path + ".none", check=False)
        assert p.returncode == 2, p.returncode
        # --utc: the file's times are UTC
        start, end = self.recorded(LINE_A)
        utc = lambda t: time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t))
        with open(path, "w") as f:
            f.write('"U-%s","101","+74950000001","x","","SIP/101-1","SIP/trunk-2","Dial","",'
                    '"%s","","%s","3","3","ANSWERED","3","%s.u",""\n' % (tag, utc(start), utc(end),
                                                                         tag))
        rep = json.loads(self.v.ctl("calls", "import", "--format", "asterisk-csv", "--utc",
                                    path).stdout)
        assert rep["imported"] == 1, rep
        c = self.search("aud", account="U-" + tag)["calls"][0]
        assert abs(parse_time(c["start"]) - int(start)) < 1.5, (c["start"], start)
        assert c["direction"] == "out" and c["source"] == LINE_A, c
        # a file in CP1251 (an older PBX): the row is refused with the way
        # out, nothing stored as bytes no answer could carry
        with open(path, "wb") as f:
            f.write(('"ЛС-%s","101","+74950000002","x","","SIP/101-1","SIP/trunk-2","Dial","",'
                     '"%s","","%s","3","3","ANSWERED","3","%s.w",""\n'
                     % (tag, utc(start), utc(end), tag)).encode("cp1251"))
        rep = json.loads(self.v.ctl("calls", "import", "--format", "asterisk-csv", "--utc",
                                    path).stdout)
        assert rep["bad"] == 1 and rep["imported"] == 0, rep
        assert "UTF-8" in rep["reasons"][0]["reason"], rep

    # -- one call: metadata, segments, cameras, audio, listen audit
    def test_call_view_listen_audited_once(self):
        cid, _ = self.new_call(caller="+79990001122")
        st, c, _ = self.c["aud"].request("GET", "/api/v1/calls/%d" % cid)
        assert st == 200, (st, c)
        assert c["segments"] and all(s["codecs"] for s in c["segments"]), c
        assert c["cameras"] == [{"source": CAM, "desk": "desk-1"}], c["cameras"]
        conn = self.c["aud"].conn()
        hdr = {"Cookie": self.c["aud"].cookie, "X-Requested-With": "vigil"}
        sizes = []
        for rng in ("bytes=0-", "bytes=1000-", "bytes=2000-2999"):
            conn.request("GET", "/api/v1/calls/%d/audio.wav" % cid, headers=dict(hdr, Range=rng))
            r = conn.getresponse()
            data = r.read()
            assert r.status == 206, (rng, r.status, data[:200])
            sizes.append(len(data))
        conn.close()
        assert sizes[0] > 44 and sizes[2] == 1000, sizes
        rows = self.audit("call.listen", "call:%d" % cid)
        assert len(rows) == 1, rows  # one row per listen, not per Range request
        # A listen that starts with a Range past byte 0 is still on record at
        # once, with its call, before any audio is sent; what follows it is
        # counted like any continuation.
        cid2, _ = self.new_call(caller="+79990001133")
        conn = self.c["aud"].conn()
        for n, rng in enumerate(("bytes=1-", "bytes=3000-")):
            conn.request("GET", "/api/v1/calls/%d/audio.wav" % cid2, headers=dict(hdr, Range=rng))
            r = conn.getresponse()
            r.read()
            assert r.status == 206, (rng, r.status)
            rows = self.audit("call.listen", "call:%d" % cid2)
            assert len(rows) == 1, (rng, rows)
        conn.close()
        st, peaks, _ = self.c["aud"].request("GET", "/api/v1/calls/%d/peaks?n=50" % cid)
        assert st == 200, (st, peaks)

    def test_desk_calls_on_camera_timeline(self):
        cid, body = self.new_call()
        t0 = parse_time(body["start"])
        st, ans, _ = self.c["aud"].request("GET", "/api/v1/sources/%s/calls?%s" % (
            CAM, q(**{"from": iso(t0 - 60), "to": iso(t0 + 60)})))
        assert st == 200, (st, ans)
        ids = [c["id"] for c in ans["calls"]]
        assert cid in ids and all(c["line"] == LINE_A for c in ans["calls"]), ans
        st, desks, _ = self.c["aud"].request("GET", "/api/v1/desks")
        assert st == 200 and desks["desks"] == [
            {"name": "desk-1", "lines": [LINE_A], "cameras": [CAM]}], desks

    def test_role_limits(self):
        cid, _ = self.new_call()
        st, _, _ = self.c["sec"].request("GET", "/api/v1/calls")
        assert st == 403, st
        for path in ("", "/audio.wav", "/peaks"):
            st, _, _ = self.c["sec"].request("GET", "/api/v1/calls/%d%s" % (cid, path))
            assert st == 404, (path, st)
        st, _, _ = self.c["sec"].request("GET", "/api/v1/sources/%s/calls" % CAM)
        assert st == 403, st

    def test_access_reason_on_and_off(self):
        cid, _ = self.new_call()
        st, _, _ = self.c["aud"].request("GET", "/api/v1/calls/%d" % cid)
        assert st == 200, st
        # turn it on through a reload of the same vigild
        with open(self.v.conf, "w") as f:
            f.write(self.conf_text.replace("timezone = Europe/Moscow\n",
                                           "timezone = Europe/Moscow\nrequire_access_reason = yes\n"))
        n = self.v.log_text().count("reload: configuration applied")
        self.v.proc.send_signal(1)
        wait_for("the reload", lambda: self.v.log_text().count("reload: configuration applied") > n,
                 20)
        try:
            segs = self.v.segments(CAM)
            frm, to = segs[1]["start"], segs[1]["end"]
            for path in ("/api/v1/calls/%d" % cid, "/api/v1/calls/%d/audio.wav" % cid,
                         "/api/v1/sources/%s/playlist.m3u8?%s" % (CAM, q(**{"from": frm, "to": to})),
                         "/api/v1/sources/%s/clip.mp4?%s" % (CAM, q(**{"from": frm, "to": to})),
                         "/api/v1/sources/%s/snapshot.jpg?%s" % (CAM, q(at=frm))):
                st, ans, _ = self.c["aud"].request("GET", path)
                assert st == 400 and ans["error"]["code"] == "reason_required", (path, st, ans)
            st, ans, _ = self.c["aud"].request("GET", "/api/v1/calls/%d?reason=complaint+42" % cid)
            assert st == 200, (st, ans)
            rows = [r for r in self.audit("call.view", "call:%d" % cid)
                    if r[1].startswith("reason=complaint 42")]
            assert rows, self.audit("call.view", "call:%d" % cid)
            # the header works too, and the playlist carries the reason to its media
            conn = self.c["aud"].conn()
            conn.request("GET", "/api/v1/sources/%s/playlist.m3u8?%s" % (
                CAM, q(**{"from": frm, "to": to})), headers={
                "Cookie": self.c["aud"].cookie, "X-Requested-With": "vigil",
                "X-Access-Reason": "case 7"})
            r = conn.getresponse()
            text = r.read().decode()
            conn.close()
            assert r.status == 200, (r.status, text)
            media = [l for l in text.splitlines() if l.startswith("media/")]
            assert media and all("reason=case%207" in l for l in media), text
            st, _, _ = self.c["aud"].request("GET", "/api/v1/sources/%s/%s" % (CAM, media[0]))
            assert st in (200, 206), st
        finally:
            with open(self.v.conf, "w") as f:
                f.write(self.conf_text)
            n = self.v.log_text().count("reload: configuration applied")
            self.v.proc.send_signal(1)
            wait_for("the reload back", lambda: self.v.log_text().count(
                "reload: configuration applied") > n, 20)
        st, _, _ = self.c["aud"].request("GET", "/api/v1/calls/%d" % cid)
        assert st == 200, st

    # -- subject access
    def test_subject_access_bundle(self):
        number = "+79035550101"
        a, _ = self.new_call(caller="8 903 555-01-01", agent="subj")
        b, _ = self.new_call(callee=number, agent="subj")
        other, _ = self.new_call(caller="+79035550199", agent="subj")
        t = time.time()
        req = {"number": "8 (903) 555-01-01", "from": iso(t - 3600), "to": iso(t + 60),
               "reason": "customer letter 2026-118"}
        st, ans, _ = self.c["sec"].request("POST", "/api/v1/subject-requests", req)
        assert st == 403, st
        st, ans, _ = self.c["officer"].request("POST", "/api/v1/subject-requests",
                                               dict(req, number="abc"))
        assert st == 400, (st, ans)
        st, ans, _ = self.c["officer"].request("POST", "/api/v1/subject-requests", req)
        assert st == 202 and ans["number"] == number and ans["calls"] == 2, (st, ans)
        eid = ans["id"]

        def done():
            st, e, _ = self.c["officer"].request("GET", "/api/v1/exports/%d" % eid)
            assert st == 200 and e["state"] != "failed", e
            return e if e["state"] == "done" else None
        wait_for("the subject-access bundle", done, 60)
        st, data, _ = self.c["officer"].request("GET", "/api/v1/exports/%d/download" % eid)
        assert st == 200, st
        z = zipfile.ZipFile(io.BytesIO(data))
        names = set(z.namelist())
        assert {"call-%d.wav" % a, "call-%d.wav" % b, "calls.csv", "calls.json",
                "summary.txt"} <= names, names
        assert "call-%d.wav" % other not in names, names
        listed = json.loads(z.read("calls.json"))
        assert sorted(c["id"] for c in listed) == sorted([a, b]), listed
        assert z.read("calls.csv").decode().count("\n") == 3
        # no cell a spreadsheet would run as a formula (numbers are "+7...")
        cells = [c for row in csv.reader(io.StringIO(z.read("calls.csv").decode())) for c in row]
        assert any(c.startswith("'+7") for c in cells), cells
        assert not [c for c in cells if c[:1] in ("=", "+", "-", "@", "\t", "\r")], cells
        out = os.path.join(self.tmp, "subject")
        z.extractall(out)
        p = subprocess.run(["minisign", "-Vm", "manifest.json", "-p", "vigil-appliance.pub"],
                           cwd=out, capture_output=True, text=True)
        assert p.returncode == 0, p.stderr
        p = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=out, capture_output=True,
                           text=True)
        assert p.returncode == 0, p.stdout + p.stderr
        zpath = os.path.join(self.tmp, "subject.zip")
        with open(zpath, "wb") as f:
            f.write(data)
        p = subprocess.run([os.path.join(integration.BUILD, "vigilctl"), "verify-export", zpath],
                           capture_output=True, text=True)
        assert p.returncode == 0, p.stdout + p.stderr
        assert self.audit("subject.request", "number:%s" % number), "no subject.request row"

    # -- holds by call, then retention under disk pressure (last: it deletes recordings)
    def test_z_hold_by_call_survives_sweep(self):
        cid, body = self.new_call()
        st, h, _ = self.c["inv"].request("POST", "/api/v1/holds", {
            "case": "C-77", "reason": "complaint", "calls": [cid]})
        assert st == 201, (st, h)
        assert sorted(h["sources"]) == sorted([LINE_A, CAM]) and h["calls"] == [cid], h
        st, lst, _ = self.c["inv"].request("GET", "/api/v1/holds")
        assert any(x["id"] == h["id"] and x["calls"] == [cid] for x in lst["holds"]), lst
        st, ans, _ = self.c["inv"].request("POST", "/api/v1/holds", {
            "case": "C-78", "reason": "x", "calls": [999999999]})
        assert st == 404, (st, ans)
        st, ans, _ = self.c["narrow"].request("POST", "/api/v1/holds", {
            "case": "C-79", "reason": "x", "calls": [cid]})
        assert st == 403, (st, ans)  # an auditor has no hold permission
        gone, gbody = self.new_call(source=LINE_B)
        t0, t1 = parse_time(body["start"]), parse_time(body["end"])
        g0, g1 = parse_time(gbody["start"]), parse_time(gbody["end"])
        over = lambda src, a, b: [s for s in self.v.segments(src)
                                  if parse_time(s["start"]) < b and parse_time(s["end"]) > a]
        before = {src: len(over(src, t0, t1)) for src in (LINE_A, CAM)}
        assert all(before.values()) and over(LINE_B, g0, g1), before
        # disk pressure: a capacity under what is stored makes every sweep
        # delete the oldest segments that no hold covers
        total = self.rows("SELECT sum(bytes) FROM segment")[0][0]
        with open(self.v.conf, "w") as f:
            f.write(self.conf_text.replace("[retention]\n", "[retention]\ncapacity_bytes = %d\n"
                                           "sweep_seconds = 1\n" % (total // 2)))
        n = self.v.log_text().count("reload: configuration applied")
        self.v.proc.send_signal(1)
        wait_for("the reload", lambda: self.v.log_text().count("reload: configuration applied") > n,
                 20)
        wait_for("the unheld call's audio deleted", lambda: not over(LINE_B, g0, g1), 40,
                 interval=0.5)
        after = {src: len(over(src, t0, t1)) for src in (LINE_A, CAM)}
        assert after == before, (before, after)
        st, c, _ = self.c["aud"].request("GET", "/api/v1/calls/%d" % cid)
        assert st == 200 and c["segments"], (st, c)
        # the unheld call keeps its metadata until min_days, without audio
        st, c, _ = self.c["aud"].request("GET", "/api/v1/calls/%d" % gone)
        assert st == 200 and c["segments"] == [], (st, c)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("-k", default="")
    args = ap.parse_args()
    integration.BUILD = args.build
    # under AddressSanitizer (make asan): libav's and GStreamer's own caches are not leaks
    os.environ["ASAN_OPTIONS"] = "fast_unwind_on_malloc=0:" + os.environ.get("ASAN_OPTIONS", "")
    os.environ["LSAN_OPTIONS"] = ("suppressions=%s/lsan.supp:" % os.path.dirname(
        os.path.abspath(__file__))) + os.environ.get("LSAN_OPTIONS", "")
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="vigil-calls-") as tmp:
        suite = Suite(tmp)
        passed = failed = 0
        try:
            names = sorted(n for n in dir(Suite) if n.startswith("test_") and args.k in n)
            passed, failed, _ = run_tests(suite, names)
        finally:
            try:
                suite.close()
            except AssertionError as e:
                failed += 1
                log("FAIL close: %s" % e)
    log("integration_calls: %d passed, %d failed (%.0f s)" % (passed, failed,
                                                              time.monotonic() - t0))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
