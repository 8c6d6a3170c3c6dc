#!/usr/bin/env python3
"""Integration tests of the audit trail against a real vigild: signed
checkpoints (file, journal, API, an independent Ed25519 check with openssl),
`vigilctl audit verify` against the three attacks the chain alone misses
(newest rows deleted, an older index.db restored, rows edited and re-hashed
with the chain's own formula), the `officer` role, audit rows for vigilctl
commands naming the Unix user, and changes that commit with their audit row
or not at all (the failure injected with a trigger on the audit table).

One vigild records from the camera simulator for most tests; the tamper
tests work on copies of a small trail of their own. Reuses the helpers of
tests/integration.py and tests/integration_web.py. Ends with "N passed, N
failed".
"""
import argparse
import base64
import concurrent.futures
import hashlib
import json
import os
import pwd
import re
import shutil
import sqlite3
import threading
import subprocess
import sys
import tempfile
import time
import traceback

import integration
from integration import Camsim, Skip, free_port, log, wait_for
from integration_web import PASSWORD, Client, WebVigil, wait_http

CHECKPOINT_FILE = "audit-checkpoints.jsonl"


def ctl_env(args, conf, env=None, stdin=None):
    return subprocess.run([os.path.join(integration.BUILD, "vigilctl"), "-c", conf] + args,
                          input=stdin, capture_output=True, text=True, timeout=120, env=env)


def sql(db, text):
    """Runs SQL on the index from outside, as an attacker or a fault would."""
    subprocess.run(["sqlite3", db], input=".timeout 5000\n" + text + "\n", text=True,
                   check=True, capture_output=True, timeout=60)


def netstring(value):
    data = str(value).encode()
    return str(len(data)).encode() + b":" + data + b","


def row_hash(prev_hash, r):
    """The chain's formula (index/audit.c): SHA-256 over the previous hash and
    the row's fields as netstrings in a fixed order."""
    h = hashlib.sha256(prev_hash.encode())
    for field in ("id", "ts_us", "actor", "ip", "action", "object", "from_us", "to_us", "result",
                  "detail"):
        h.update(netstring(r[field]))
    return h.hexdigest()


def checkpoints(data_dir):
    with open(os.path.join(data_dir, CHECKPOINT_FILE)) as f:
        return [json.loads(line) for line in f if line.strip()]


def openssl_verify(public_key_text, cp, tmp):
    """Checks a checkpoint's signature with openssl, from the minisign public
    key text alone: proof the signature is plain Ed25519 over the documented
    message."""
    blob = base64.b64decode(public_key_text.splitlines()[1])
    assert blob[:2] == b"Ed" and len(blob) == 42, blob
    der = bytes.fromhex("302a300506032b6570032100") + blob[10:]
    pem = os.path.join(tmp, "pub.pem")
    with open(pem, "w") as f:
        f.write("-----BEGIN PUBLIC KEY-----\n%s\n-----END PUBLIC KEY-----\n"
                % base64.b64encode(der).decode())
    msg = os.path.join(tmp, "msg")
    with open(msg, "w") as f:
        f.write("vigil-audit-checkpoint-v1 seq=%d row=%d hash=%s ts_us=%d"
                % (cp["seq"], cp["row"], cp["hash"], cp["ts_us"]))
    sig = os.path.join(tmp, "sig")
    with open(sig, "wb") as f:
        f.write(base64.b64decode(cp["sig"]))
    p = subprocess.run(["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", pem, "-rawin",
                        "-in", msg, "-sigfile", sig], capture_output=True, text=True)
    return p.returncode == 0


class Suite:
    def __init__(self, tmp):
        self.tmp = tmp
        self.cam = None
        self.v = None
        self.tamper_base = None

    def shared(self):
        """One vigild recording one camera, checkpointing every second."""
        if self.v is None:
            self.cam = Camsim()
            port = free_port()
            v = WebVigil(os.path.join(self.tmp, "shared"),
                         [("cam1", self.cam.url("h264"), "video")],
                         "http_listen = 127.0.0.1:%d\naudit_checkpoint_seconds = 1\n" % port)
            v.port = port
            v.db = os.path.join(v.data, "index.db")
            v.add_user("admin", "admin")
            v.start()
            self.v = v
            wait_http(port)
            wait_for("a first segment", lambda: v.segments("cam1"), 30)
        return self.v

    def admin(self):
        c = Client(self.shared().port)
        c.login("admin")
        return c

    def close(self):
        if self.v:
            self.v.stop()
        if self.cam:
            self.cam.stop()

    # ---- item 5: checkpoints ----

    def test_checkpoints_file_journal_api_and_signature(self):
        v = self.shared()
        c = self.admin()
        status, body, _ = c.request("GET", "/api/v1/audit?limit=1")
        assert status == 200, body
        head = wait_for("the audit.read row", lambda: max(
            r["id"] for r in json.loads(v.ctl("audit", "list", "--json").stdout)), 10)
        # a checkpoint covering the new head within the configured period
        wait_for("a checkpoint of row %d" % head,
                 lambda: any(cp["row"] >= head for cp in checkpoints(v.data)), 15)
        cps = checkpoints(v.data)
        assert [cp["seq"] for cp in cps] == list(range(1, len(cps) + 1)), cps
        # the journal has each checkpoint as written to the file (logged
        # right after the append)
        wait_for("the checkpoints in the journal", lambda: all(
            ('"seq":%d,"row":%d,"hash":"%s"' % (cp["seq"], cp["row"], cp["hash"])) in v.log_text()
            for cp in cps), 10)
        # the API serves them, with the key that verifies them
        status, body, _ = c.request("GET", "/api/v1/audit/checkpoints")
        assert status == 200, body
        api = body["checkpoints"]
        assert [cp["seq"] for cp in api][:len(cps)] == [cp["seq"] for cp in cps], (api, cps)
        shown = v.ctl("key", "show").stdout
        assert body["public_key"] == shown, (body["public_key"], shown)
        assert re.match(r"untrusted comment: minisign public key [0-9A-F]{16}\nRW[A-Za-z0-9+/]{54}\n$",
                        shown), shown
        assert shown.split()[5] == body["key_id"] == api[0]["key_id"]
        for cp in api[-3:]:
            assert openssl_verify(shown, cp, self.tmp), cp
        forged = dict(api[-1], row=api[-1]["row"] + 1)
        assert not openssl_verify(shown, forged, self.tmp)
        # paging: only what comes after the last one collected
        last = api[-1]["seq"]
        status, body, _ = c.request("GET", "/api/v1/audit/checkpoints?after=%d" % last)
        assert status == 200 and all(cp["seq"] > last for cp in body["checkpoints"]), body
        assert c.request("GET", "/api/v1/audit/checkpoints?after=x")[0] == 400
        # the key is vigild's alone; the public half is for everyone
        assert os.stat(os.path.join(v.data, "appliance.key")).st_mode & 0o777 == 0o600
        assert os.stat(os.path.join(v.data, "appliance.pub")).st_mode & 0o777 == 0o644
        p = v.ctl("audit", "verify")
        assert "chain intact" in p.stdout and "checkpoint(s) match" in p.stdout, p.stdout

    def tamper_copy(self, name):
        """A copy of a small trail of its own, anchored by vigild's checkpoints
        (at start, at shutdown), plus an older copy of its index.db."""
        if self.tamper_base is None:
            root = os.path.join(self.tmp, "tamper")
            port = free_port()
            v = WebVigil(root, [], "http_listen = 127.0.0.1:%d\n" % port)
            v.add_user("admin", "admin")
            v.start()
            wait_http(port)
            c = Client(port)
            c.login("admin")
            for i in range(5):
                assert c.request("GET", "/api/v1/audit?limit=1")[0] == 200
            db = os.path.join(v.data, "index.db")
            sql(db, ".backup '%s'" % os.path.join(root, "older.db"))
            for i in range(5):
                assert c.request("GET", "/api/v1/audit/verify")[0] == 200
            assert v.stop()[0] == 0
            assert v.ctl("audit", "verify").returncode == 0
            self.tamper_base = v
        base = self.tamper_base
        root = os.path.join(self.tmp, "tamper-" + name)
        shutil.copytree(base.root, root)
        conf = os.path.join(root, "vigil.conf")
        with open(conf) as f:
            text = f.read().replace(base.root, root)
        with open(conf, "w") as f:
            f.write(text)
        return root, os.path.join(root, "data"), conf

    def verify_fails(self, conf, *words):
        p = ctl_env(["audit", "verify"], conf)
        assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
        for w in words:
            assert w in p.stdout, (w, p.stdout)
        return p.stdout

    def test_tamper_delete_newest_rows(self):
        root, data, conf = self.tamper_copy("delete")
        db = os.path.join(data, "index.db")
        last = checkpoints(data)[-1]["row"]
        sql(db, "DROP TRIGGER audit_no_delete; DELETE FROM audit WHERE id > %d;" % (last - 3))
        # the chain alone cannot tell: what is left still links up
        out = self.verify_fails(conf, "truncated", "row %d" % last)
        assert "chain is broken" not in out, out

    def test_tamper_restore_older_index(self):
        root, data, conf = self.tamper_copy("restore")
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(os.path.join(data, "index.db" + suffix)):
                os.unlink(os.path.join(data, "index.db" + suffix))
        shutil.copy(os.path.join(root, "older.db"), os.path.join(data, "index.db"))
        last = checkpoints(data)[-1]["row"]
        out = self.verify_fails(conf, "truncated", "row %d" % last)
        assert "chain is broken" not in out, out
        # vigild started on the restored copy says so, and its checkpoint
        # makes the step back visible for good
        v = self.vigil_on(root)
        wait_for("the rollback logged", lambda: "no longer reaches row %d" % last in v.log_text(), 20)
        assert v.stop()[0] == 0
        self.verify_fails(conf, "rolled back")

    @staticmethod
    def vigil_on(root):
        """Starts a vigild on a tampered copy (its config and data as they are)."""
        v = WebVigil.__new__(WebVigil)
        v.root, v.data, v.conf = root, os.path.join(root, "data"), os.path.join(root, "vigil.conf")
        v.logpath = os.path.join(root, "vigild.log")
        v.proc = None
        return v.start()

    def test_tamper_everything_on_the_box_caught_by_copies_kept_elsewhere(self):
        root, data, conf = self.tamper_copy("root")
        # what the central point kept: the journal's checkpoint lines, the key
        journal = os.path.join(root, "journal.txt")
        with open(os.path.join(root, "vigild.log")) as f, open(journal, "w") as out:
            out.writelines(line for line in f if "audit: checkpoint" in line)
        kept_key = os.path.join(root, "kept.pub")
        shutil.copy(os.path.join(data, "appliance.pub"), kept_key)
        last = checkpoints(data)[-1]["row"]
        # root on the box cuts the trail, then replaces the key and every
        # checkpoint: vigild makes a new key and signs the cut trail
        sql(os.path.join(data, "index.db"),
            "DROP TRIGGER audit_no_delete; DELETE FROM audit WHERE id > %d;" % (last - 3))
        for name in ("appliance.key", "appliance.pub", CHECKPOINT_FILE):
            os.unlink(os.path.join(data, name))
        v = self.vigil_on(root)
        wait_for("a new checkpoint", lambda: os.path.exists(os.path.join(data, CHECKPOINT_FILE)), 20)
        assert v.stop()[0] == 0
        p = ctl_env(["audit", "verify"], conf)
        assert p.returncode == 0, p.stdout  # the box alone cannot tell any more
        out = self.verify_fails_args(conf, ["--checkpoints", journal, "--key", kept_key],
                                     "truncated", "row %d" % last, "forged")
        assert "chain is broken" not in out, out
        p = ctl_env(["audit", "verify", "--checkpoints", os.path.join(root, "nope")], conf)
        assert p.returncode == 2, p

    def test_unreadable_key_raises_an_alarm_and_vigild_keeps_running(self):
        root, data, conf = self.tamper_copy("badkey")
        with open(os.path.join(data, "appliance.key"), "w") as f:
            f.write("not a key\n")
        v = self.vigil_on(root)
        try:
            def alarm():
                p = ctl_env(["storage", "--json"], conf)
                return p.returncode == 0 and any(a["kind"] == "audit_unanchored"
                                                 for a in json.loads(p.stdout)["alarms"])
            wait_for("the audit_unanchored alarm", alarm, 20)
            assert v.proc.poll() is None, "vigild must keep running"
        finally:
            assert v.stop()[0] == 0
        assert "not anchored" in v.log_text()

    def verify_fails_args(self, conf, args, *words):
        p = ctl_env(["audit", "verify"] + args, conf)
        assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
        for w in words:
            assert w in p.stdout, (w, p.stdout)
        return p.stdout

    def test_tamper_edit_and_rehash(self):
        root, data, conf = self.tamper_copy("rehash")
        db = os.path.join(data, "index.db")
        sql(db, "DROP TRIGGER audit_no_update;")
        con = sqlite3.connect(db)
        con.row_factory = sqlite3.Row
        rows = [dict(r) for r in con.execute("SELECT * FROM audit ORDER BY id")]
        victim = rows[len(rows) // 2]["id"]
        prev = rows[0]["prev_hash"]
        for r in rows:
            if r["id"] == victim:
                r["detail"] = "nothing to see"
            r["prev_hash"] = prev
            r["hash"] = row_hash(prev, r)
            prev = r["hash"]
        assert [r["hash"] for r in rows][-1] != checkpoints(data)[-1]["hash"]
        for r in rows:
            if r["id"] >= victim:
                con.execute("UPDATE audit SET detail = ?, prev_hash = ?, hash = ? WHERE id = ?",
                            (r["detail"], r["prev_hash"], r["hash"], r["id"]))
        con.commit()
        con.close()
        out = self.verify_fails(conf, "rewritten")
        assert "chain is broken" not in out, out  # re-hashed: the chain itself verifies

    def test_tamper_forged_checkpoint(self):
        root, data, conf = self.tamper_copy("forged")
        path = os.path.join(data, CHECKPOINT_FILE)
        with open(path) as f:
            lines = f.readlines()
        cp = json.loads(lines[-1])
        cp["row"] -= 2  # an attacker "moves" the anchor back to hide a cut
        lines[-1] = json.dumps(cp) + "\n"
        with open(path, "w") as f:
            f.writelines(lines)
        self.verify_fails(conf, "forged", "#%d" % cp["seq"])

    # ---- item 11: the officer ----

    def test_officer_reads_the_trail_and_sees_no_recordings(self):
        v = self.shared()
        v.add_user("olga", "officer")
        users = json.loads(v.ctl("user", "list", "--json").stdout)
        assert {"name": "olga", "role": "officer"}.items() <= next(
            u for u in users if u["name"] == "olga").items(), users
        o = Client(v.port)
        me = o.login("olga")
        assert me["permissions"] == ["audit"], me
        for path in ("/api/v1/audit?limit=5", "/api/v1/audit?format=csv&limit=5",
                     "/api/v1/audit/verify", "/api/v1/audit/checkpoints",
                     "/api/v1/destruction-log"):
            status, body, _ = o.request("GET", path)
            assert status == 200, (path, status, body)
        for path in ("/api/v1/sources", "/api/v1/sources/cam1", "/api/v1/sources/cam1/segments",
                     "/api/v1/sources/cam1/timeline", "/api/v1/holds", "/api/v1/users",
                     "/api/v1/tokens", "/api/v1/storage"):
            status, body, _ = o.request("GET", path)
            assert status in (403, 404), (path, status, body)
        assert o.request("POST", "/api/v1/holds", {
            "case": "C-1", "reason": "r", "sources": ["cam1"], "from": 0, "to": 1})[0] == 403
        assert o.request("PATCH", "/api/v1/users/olga", {"role": "admin"})[0] == 403

    # ---- item 6: a change and its audit row, one transaction ----

    def test_changes_commit_with_their_audit_row_or_not_at_all(self):
        v = self.shared()
        c = self.admin()
        v.add_user("victim", "security")
        status, tok, _ = c.request("POST", "/api/v1/tokens", {"name": "t1", "permissions": ["live"]})
        assert status == 201, tok
        hold = {"case": "C-9", "reason": "complaint", "sources": ["cam1"],
                "from": "2026-01-01T00:00:00Z", "to": "2026-01-02T00:00:00Z"}
        status, h, _ = c.request("POST", "/api/v1/holds", hold)
        assert status == 201, h
        # a source listed twice is held once (it was a 500 from the index)
        status, h2, _ = c.request("POST", "/api/v1/holds", dict(hold, sources=["cam1", "cam1"]))
        assert status == 201 and h2["sources"] == ["cam1"], (status, h2)
        db = v.db

        def count(query):
            con = sqlite3.connect("file:%s?mode=ro" % db, uri=True, timeout=10)
            try:
                return con.execute(query).fetchone()[0]
            finally:
                con.close()

        state = lambda: (count("SELECT COUNT(*) FROM account"),
                         count("SELECT role FROM account WHERE name = 'victim'"),
                         count("SELECT COUNT(*) FROM token"),
                         count("SELECT COUNT(*) FROM token WHERE revoked_us IS NOT NULL"),
                         count("SELECT COUNT(*) FROM hold"),
                         count("SELECT COUNT(*) FROM hold WHERE released_us IS NOT NULL"),
                         count("SELECT COUNT(*) FROM source_override"),
                         count("SELECT COUNT(*) FROM session"),
                         count("SELECT MAX(id) FROM audit"))
        before = state()
        sql(db, "CREATE TRIGGER inject BEFORE INSERT ON audit BEGIN"
                " SELECT RAISE(ABORT, 'injected'); END;")
        try:
            attempts = [
                ("POST", "/api/v1/users", {"name": "nobody", "role": "admin",
                                           "password": "0123456789x"}),
                ("PATCH", "/api/v1/users/victim", {"role": "admin"}),
                ("DELETE", "/api/v1/users/victim", None),
                ("POST", "/api/v1/tokens", {"name": "t2", "permissions": ["live"]}),
                ("DELETE", "/api/v1/tokens/%d" % tok["id"], None),
                ("POST", "/api/v1/holds", hold),
                ("POST", "/api/v1/holds/%d/release" % h["id"], {"reason": "closed"}),
                ("PATCH", "/api/v1/sources/cam1", {"keep_days": 90}),
                ("POST", "/api/v1/logout", None),
            ]
            for method, path, body in attempts:
                status, reply, resp = c.request(method, path, body)
                assert status == 500 and reply["error"]["code"] == "audit_failed", \
                    (method, path, status, reply)
                assert resp.getheader("Set-Cookie") is None, (method, path)
            fresh = Client(v.port)
            status, reply, resp = fresh.request("POST", "/api/v1/login",
                                                {"user": "victim", "password": PASSWORD})
            assert status == 500 and reply["error"]["code"] == "audit_failed", (status, reply)
            assert resp.getheader("Set-Cookie") is None
            assert state() == before, (state(), before)
        finally:
            sql(db, "DROP TRIGGER inject;")
        # the same requests go through once rows can be written again
        assert c.request("GET", "/api/v1/me")[0] == 200  # the session was not ended
        assert c.request("PATCH", "/api/v1/users/victim", {"role": "auditor"})[0] == 200
        assert count("SELECT role FROM account WHERE name = 'victim'") == "auditor"
        assert "chain intact" in v.ctl("audit", "verify").stdout

    def test_last_admin_rule_holds_under_parallel_demotions(self):
        root = os.path.join(self.tmp, "admins")
        port = free_port()
        v = WebVigil(root, [], "http_listen = 127.0.0.1:%d\n" % port)
        v.add_user("adm0", "admin")
        v.add_user("adm1", "admin")
        token = v.ctl("token", "add", "ops", "--perm", "admin").stdout.strip()
        db = os.path.join(v.data, "index.db")
        v.start()
        try:
            wait_http(port)
            pair = ["adm0", "adm1"]
            for rnd in range(4):
                conns = []
                for name in pair:
                    cl = Client(port)
                    cl.token = token
                    conns.append((cl, cl.conn(), name))
                barrier = threading.Barrier(2)

                def demote(item):
                    cl, conn, name = item
                    barrier.wait()
                    return cl.request("PATCH", "/api/v1/users/" + name, {"role": "security"},
                                      conn=conn)[0]
                with concurrent.futures.ThreadPoolExecutor(2) as ex:
                    statuses = sorted(ex.map(demote, conns))
                for _, conn, _ in conns:
                    conn.close()
                assert statuses == [200, 409], (rnd, statuses)
                con = sqlite3.connect("file:%s?mode=ro" % db, uri=True, timeout=10)
                admins = [r[0] for r in con.execute("SELECT name FROM account WHERE role = 'admin'")]
                con.close()
                assert len(admins) == 1, (rnd, admins)
                new = "adm%d" % (rnd + 2)
                v.add_user(new, "admin")
                pair = [admins[0], new]
        finally:
            v.stop()

    # ---- item 7: vigilctl is audited too ----

    def test_vigilctl_commands_are_audited_with_the_unix_user(self):
        v = self.shared()
        me = pwd.getpwuid(os.getuid()).pw_name
        actor = "system:vigilctl uid=%d(%s) sudo=ivanov" % (os.getuid(), me)
        env = dict(os.environ, SUDO_USER="ivanov")
        mark = max(r["id"] for r in json.loads(v.ctl("audit", "list", "--json").stdout))
        seg = wait_for("a segment", lambda: v.segments("cam1"), 30)[0]

        def run(*args, stdin=None, code=0):
            p = ctl_env(list(args), v.conf, env=env, stdin=stdin)
            assert p.returncode == code, (args, p.returncode, p.stdout, p.stderr)
            return p
        run("segments", "cam1", "--json")
        out = os.path.join(self.tmp, "clip.mp4")
        run("export", "cam1", "--from", seg["start"], "--to", seg["end"], "-o", out)
        hold = json.loads(run("hold", "add", "--case", "C-7", "--reason", "complaint 7",
                              "--source", "cam1", "--from", seg["start"], "--to", seg["end"],
                              "--json").stdout)["id"]
        run("hold", "release", str(hold), "--reason", "closed")
        run("sweep", "--dry-run")
        run("sweep")
        run("user", "add", "cliuser", "--role", "auditor", stdin="a-password-123\n")
        run("user", "passwd", "cliuser", stdin="another-password-1\n")
        run("user", "del", "cliuser")
        run("token", "add", "clitoken", "--perm", "live")
        tid = max(t["id"] for t in json.loads(v.ctl("token", "list", "--json").stdout))
        run("token", "revoke", str(tid))
        rows = [r for r in json.loads(v.ctl("audit", "list", "--json").stdout) if r["id"] > mark]
        mine = [(r["action"], r["object"]) for r in rows if r["actor"] == actor]
        for expected in [("segments.read", "source:cam1"), ("export", "source:cam1"),
                         ("hold.create", "hold:%d" % hold), ("hold.release", "hold:%d" % hold),
                         ("retention.plan", "retention"), ("retention.sweep", "retention"),
                         ("user.create", "user:cliuser"), ("user.update", "user:cliuser"),
                         ("user.delete", "user:cliuser"), ("token.create", "token:%d" % tid),
                         ("token.revoke", "token:%d" % tid)]:
            assert expected in mine, (expected, mine, [r["actor"] for r in rows])
        # without sudo, and with a SUDO_USER that is not a user name
        p = ctl_env(["segments", "cam1"], v.conf, env=dict(os.environ, SUDO_USER="x y;z"))
        assert p.returncode == 0, p.stderr
        last = json.loads(v.ctl("audit", "list", "--json").stdout)[-1]
        assert last["actor"] == "system:vigilctl uid=%d(%s)" % (os.getuid(), me), last
        # no record, no access: with audit rows failing, nothing is shown or changed
        sql(v.db, "CREATE TRIGGER inject BEFORE INSERT ON audit BEGIN"
                  " SELECT RAISE(ABORT, 'injected'); END;")
        try:
            p = run("segments", "cam1", "--json", code=1)
            assert p.stdout == "", p.stdout
            run("hold", "add", "--case", "C-8", "--reason", "r", "--source", "cam1",
                "--from", seg["start"], "--to", seg["end"], code=1)
            run("user", "add", "ghost", "--role", "auditor", stdin="a-password-123\n", code=1)
        finally:
            sql(v.db, "DROP TRIGGER inject;")
        holds = json.loads(v.ctl("hold", "list", "--all", "--json").stdout)
        assert not any(h["case"] == "C-8" for h in holds), holds
        assert "ghost" not in v.ctl("user", "list").stdout


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("-k", default="")
    args = ap.parse_args()
    integration.BUILD = args.build
    passed = failed = skipped = 0
    with tempfile.TemporaryDirectory(prefix="vigil-audit-") as tmp:
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
                    log("FAIL %s (%.1f s)\n%s" % (name, time.monotonic() - t0,
                                                  traceback.format_exc()))
                    if suite.v:
                        log("vigild log tail:\n" + suite.v.log_text()[-3000:])
        finally:
            suite.close()
    log("integration_audit: %d passed, %d failed, %d skipped" % (passed, failed, skipped))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
