#!/usr/bin/env python3
"""The calls module's signal processing, end to end.

- The announcement check over a seeded corpus of synthetic calls
  (tests/tools/announce_corpus.py: espeak-ng speech, sox for G.711, level,
  noise, speed, late starts, cut announcements), classified by
  build/tests/announce_eval: at least 99 % correct and no call without the
  announcement reported present. The full corpus (>= 400 calls) runs in
  `make bench` (bench/bench_announce.py).
- Bad reference files are refused with a reason, never crash.
- Live, one camera simulator and one vigild for all: /line-talk (3 s of
  speech-like sound every 13 s) with call_detect = vad gives calls of the
  right length and spacing (boundaries within 0.5 s); two lines playing
  espeak-ng WAVs, one starting with the announcement and one without it,
  get VAD calls whose announcement check (run by the calls worker from the
  archived audio once the call ends) says present and absent; vigilctl
  calls recheck clears the checks of a range and the worker checks again.
  The live lines record while the corpus runs, so waiting costs little.
Ends with "N passed, N failed"; exit status 1 on any failure.
"""
import argparse
import os
import sqlite3
import struct
import subprocess
import sys
import tempfile
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import integration  # noqa: E402
from integration import Camsim, Vigil, log, run_tests, wait_for  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS_CALLS = 126  # six blocks of every difficulty: 54 with, 54 without, 12 cut, 6 short
CORPUS_SEED = 17


def wav_bytes(samples, rate=8000, fmt=1, bits=16):
    data = b"".join(struct.pack("<h", s) for s in samples) if bits == 16 else bytes(samples)
    return (b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVE" +
            b"fmt " + struct.pack("<IHHIIHH", 16, fmt, 1, rate, rate * bits // 8, bits // 8, bits) +
            b"data" + struct.pack("<I", len(data)) + data)


ANNOUNCEMENT = ("Здравствуйте! Вы позвонили в контактный центр. "
                "Для контроля качества обслуживания ваш разговор записывается.")
AGENT = "Добрый день, меня зовут Анна, чем я могу вам помочь?"
CUSTOMER = "Я хотел бы узнать остаток по моей карте и последние операции."
GAP_S = 4  # call_gap_seconds of the live lines: short, so calls end soon


def speak(text, path):
    subprocess.run(["espeak-ng", "-v", "ru", "-s", "150", "-w", path, text], check=True,
                   stdout=subprocess.DEVNULL)


def line_wav(tmp, name, parts):
    """An 8 kHz mono 16-bit WAV: parts are WAV paths or seconds of silence."""
    args = []
    for i, p in enumerate(parts):
        if isinstance(p, str):
            args.append(p)
        else:
            sil = os.path.join(tmp, "%s-sil%d.wav" % (name, i))
            subprocess.run(["sox", "-n", "-r", "22050", "-c", "1", "-b", "16", sil, "trim", "0", str(p)],
                           check=True)
            args.append(sil)
    out = os.path.join(tmp, "%s.wav" % name)
    subprocess.run(["sox"] + args + ["-r", "8000", "-c", "1", "-b", "16", "-e", "signed", out], check=True)
    return out


class Suite:
    def __init__(self, tmp):
        self.tmp = tmp
        self.eval = os.path.join(integration.BUILD, "tests", "announce_eval")
        self.corpus = None
        # the live part starts first and records while the corpus runs
        self.ref = os.path.join(tmp, "announcement.wav")
        speak(ANNOUNCEMENT, self.ref)
        agent, customer = os.path.join(tmp, "agent.wav"), os.path.join(tmp, "customer.wav")
        speak(AGENT, agent)
        speak(CUSTOMER, customer)
        # each loops: a call, then 12 s of silence (more than the gap)
        with_ann = line_wav(tmp, "with", [1.0, self.ref, 0.5, agent, 0.5, customer, 12.0])
        without = line_wav(tmp, "without", [1.0, agent, 0.5, customer, 12.0])
        self.cam = Camsim(["--line-wav", "announce=" + with_ann, "--line-wav", "noannounce=" + without])
        extra = "[calls]\nannouncement = %s\nannouncement_window = 20\n" % self.ref
        # a queue with its own reference: the agent's words (the noann line opens with them)
        extra += "[queue q agent]\nannouncement = %s\n" % agent
        for name, mount in (("talk", "line-talk"), ("ann", "line-announce"), ("noann", "line-noannounce")):
            extra += ("[source %s]\nurl = %s\nkind = audio\ncall_detect = vad\n"
                      "call_gap_seconds = %d\n") % (name, self.cam.url(mount), GAP_S)
        self.v = Vigil(os.path.join(tmp, "vigil"), [], segment_seconds=2, extra=extra).start()
        self.db = os.path.join(self.v.data, "index.db")

    def close(self):
        rc, _ = self.v.stop()
        self.cam.stop()
        assert rc == 0, "vigild exit %s\n%s" % (rc, self.v.log_text()[-3000:])

    def calls(self, source, origin="vad"):
        if not os.path.exists(self.db):
            return []
        con = sqlite3.connect("file:%s?mode=ro" % self.db, uri=True, timeout=5)
        try:
            return [dict(zip(("id", "start", "end", "origin", "state", "offset", "score", "checked"), r))
                    for r in con.execute(
                        "SELECT c.id, c.start_us, c.end_us, c.origin, c.ann_state, c.ann_offset_us,"
                        " c.ann_score, c.ann_checked_us FROM call c JOIN source s ON s.id = c.source_id"
                        " WHERE s.name = ? AND c.origin = ? ORDER BY c.start_us", (source, origin))]
        except sqlite3.OperationalError:
            return []  # not migrated yet
        finally:
            con.close()

    def make_corpus(self):
        if self.corpus is None:
            out = os.path.join(self.tmp, "corpus")
            subprocess.run([sys.executable, os.path.join(REPO, "tests", "tools", "announce_corpus.py"),
                            "--out", out, "--calls", str(CORPUS_CALLS), "--seed", str(CORPUS_SEED)],
                           check=True, timeout=300 * integration.TIMEOUT_SCALE)
            self.corpus = out
        return self.corpus

    def run_eval(self, ref, manifest, *extra):
        return subprocess.run([self.eval, "--ref", ref, "--manifest", manifest] + list(extra),
                              capture_output=True, text=True, timeout=300 * integration.TIMEOUT_SCALE)

    def test_announce_corpus(self):
        c = self.make_corpus()
        with open(os.path.join(c, "corpus.tsv")) as f:
            rows = [l.split("\t") for l in f.read().splitlines()]
        truths = {r[1] for r in rows}
        assert len(rows) == CORPUS_CALLS and truths == {"present", "absent", "partial", "unknown"}, truths
        r = self.run_eval(os.path.join(c, "ref.wav"), os.path.join(c, "corpus.tsv"),
                          "--min-accuracy", "0.99", "--max-false-present", "0")
        log(r.stdout.rstrip())
        assert r.returncode == 0, r.stdout + r.stderr

    def test_announce_eval_can_fail(self):
        """The thresholds are real: the corpus checked against a reference that
        is not the announcement (another utterance of it) scores badly."""
        c = self.make_corpus()
        other = os.path.join(self.tmp, "other-ref.wav")
        subprocess.run(["espeak-ng", "-v", "ru", "-w", other,
                        "Добрый день, соединяю вас со специалистом отдела кредитования."], check=True)
        # one block of every difficulty is enough to show it
        with open(os.path.join(c, "corpus.tsv")) as f:
            block = f.read().splitlines()[:21]
        manifest = os.path.join(c, "block.tsv")
        with open(manifest, "w") as f:
            f.write("\n".join(block) + "\n")
        r = self.run_eval(other, manifest, "--min-accuracy", "0.99")
        assert r.returncode == 1 and "FAIL: accuracy" in r.stdout, r.stdout + r.stderr
        # and nothing it heard was taken for that other announcement
        last = [l for l in r.stdout.splitlines() if l.startswith("all")][0]
        assert "false present 0 of" in last, last

    def test_bad_references(self):
        manifest = os.path.join(self.tmp, "empty.tsv")
        open(manifest, "w").close()
        cases = {
            "missing": (None, "No such file"),
            "text": (b"this is not a wav file at all, just text " * 4, "not a RIFF/WAVE"),
            "truncated": (wav_bytes([0] * 100)[:30], "not a WAV file"),
            "short": (wav_bytes([1000, -1000] * 2000), "must last"),
            "silent": (wav_bytes([0] * 24000), "silent"),
            "24bit": (wav_bytes([0] * 24000)[:20] + struct.pack("<HHIIHH", 1, 1, 8000, 24000, 3, 24) +
                      wav_bytes([0] * 24000)[36:], "unsupported WAV format"),
            "no-data": (wav_bytes([0] * 24000)[:36] + b"LIST" + struct.pack("<I", 4) + b"abcd", "no fmt or data"),
        }
        for name, (body, reason) in cases.items():
            path = os.path.join(self.tmp, "bad-%s.wav" % name)
            if body is not None:
                with open(path, "wb") as f:
                    f.write(body)
            r = self.run_eval(path, manifest)
            assert r.returncode == 2 and reason in r.stderr, (name, r.returncode, r.stderr)


    def test_vad_talk_spurts(self):
        """/line-talk: 2.96 s of sound every 13 s. Each spurt is one call of
        that length (the VAD's frames and hangover: within 0.5 s), 13 s
        apart, stored with origin vad and no numbers."""
        calls = wait_for("two vad calls on talk", lambda: (lambda c: c if len(c) >= 2 else None)(
            self.calls("talk")), 60)
        for c in calls:
            assert c["origin"] == "vad", c
            dur = (c["end"] - c["start"]) / 1e6
            assert abs(dur - 2.96) <= 0.5, ("call length", dur, c)
        spacing = (calls[1]["start"] - calls[0]["start"]) / 1e6
        assert abs(spacing - 13.0) <= 0.5, ("spacing", spacing)
        con = sqlite3.connect("file:%s?mode=ro" % self.db, uri=True, timeout=5)
        row = con.execute("SELECT caller, callee, call_id FROM call WHERE id = ?", (calls[0]["id"],)).fetchone()
        con.close()
        assert row[0] == "" and row[1] == "" and row[2] is None, row

    def checked(self, source):
        return (lambda c: c[0] if c and c[0]["state"] else None)(self.calls(source))

    def test_vad_announcement_live(self):
        """The calls worker checks each ended call from the archive: the line
        that opens with the announcement says present (at the call's start:
        the VAD starts the call on it), the other absent."""
        ann = wait_for("the ann call checked", lambda: self.checked("ann"), 90)
        noann = wait_for("the noann call checked", lambda: self.checked("noann"), 60)
        log("ann: %s\nnoann: %s" % (ann, noann))
        assert ann["state"] == "present", ann
        assert ann["offset"] is not None and 0 <= ann["offset"] <= 1000000, ann
        assert ann["score"] > 0.6, ann
        assert noann["state"] == "absent" and noann["offset"] is None, noann
        # the talk line's calls (3 s) are shorter than the announcement: unknown
        talk = wait_for("a talk call checked", lambda: self.checked("talk"), 30)
        assert talk["state"] == "unknown" and talk["score"] is None, talk

    def test_pbx_call_checked(self):
        """Any ended call is checked, not only VAD's: rows as the PBX API
        writes them (origin pbx, a call_id), over the two lines' recorded
        audio, get present and absent. (The PBX routes are another module's;
        the row is what they store.)"""
        ann = wait_for("the ann call checked", lambda: self.checked("ann"), 90)
        noann = wait_for("the noann call checked", lambda: self.checked("noann"), 60)
        con = sqlite3.connect(self.db, timeout=10)
        now = int(time.time() * 1e6)
        for i, (src, c) in enumerate((("ann", ann), ("noann", noann))):
            # the PBX's clock: the call starts half a second before the sound
            con.execute("INSERT INTO call (call_id, source_id, start_us, end_us, origin, created_us,"
                        " updated_us) SELECT ?, id, ?, ?, 'pbx', ?, ? FROM source WHERE name = ?",
                        ("pbx-%d" % i, c["start"] - 500000, c["end"], now, now, src))
        con.commit()
        con.close()

        def pbx(src):
            return next((c for c in self.calls(src, "pbx") if c["state"]), None)
        a = wait_for("the pbx call on ann checked", lambda: pbx("ann"), 30)
        b = wait_for("the pbx call on noann checked", lambda: pbx("noann"), 30)
        assert a["state"] == "present" and 100000 <= a["offset"] <= 900000, a
        assert b["state"] == "absent", b

    def test_queue_reference(self):
        """A call in a queue with its own reference ([queue NAME]) is judged
        against that one, not [calls]': over the noann line's audio (which
        opens with the agent's words, queue "q agent"'s reference) it is
        present, where test_pbx_call_checked's call without a queue is
        absent."""
        noann = wait_for("the noann call checked", lambda: self.checked("noann"), 90)
        con = sqlite3.connect(self.db, timeout=10)
        now = int(time.time() * 1e6)
        con.execute("INSERT INTO call (call_id, source_id, start_us, end_us, queue, origin,"
                    " created_us, updated_us) SELECT 'pbx-queue', id, ?, ?, 'q agent', 'pbx', ?, ?"
                    " FROM source WHERE name = 'noann'", (noann["start"] - 500000, noann["end"], now, now))
        con.commit()
        con.close()

        def checked():
            con = sqlite3.connect("file:%s?mode=ro" % self.db, uri=True, timeout=5)
            try:
                return con.execute("SELECT ann_state, ann_offset_us FROM call WHERE call_id = 'pbx-queue'"
                                   " AND ann_state IS NOT NULL").fetchone()
            finally:
                con.close()
        state, offset = wait_for("the queue's call checked", checked, 30)
        assert state == "present" and 0 <= offset <= 1500000, (state, offset)

    def test_vigilctl_recheck(self):
        """vigilctl calls recheck --from --to forgets the checks of calls
        starting in the range (audited); the worker checks them again."""
        ann = wait_for("the ann call checked", lambda: self.checked("ann"), 90)
        # exactly this call: [its start's millisecond, + 1 ms)
        frm, to = ["%.3f" % ((ann["start"] // 1000 + k) / 1000.0) for k in (0, 1)]
        p = self.v.ctl("calls", "recheck", "--from", frm, "--to", to)
        assert "1 call" in p.stdout, p.stdout
        again = wait_for("re-checked", lambda: (lambda c: c if c and c[0]["checked"] and
                                                c[0]["checked"] > ann["checked"] else None)(
            self.calls("ann")), 30)
        assert again[0]["state"] == "present", again
        p = self.v.ctl("audit", "list", "--json")
        assert "calls.recheck" in p.stdout, p.stdout[-2000:]
        bad = self.v.ctl("calls", "recheck", "--from", to, "--to", frm, check=False)
        assert bad.returncode == 2, (bad.returncode, bad.stderr)
        bad = self.v.ctl("calls", "recheck", check=False)
        assert bad.returncode == 2, (bad.returncode, bad.stderr)


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
    t_all = time.monotonic()
    passed = failed = 0
    with tempfile.TemporaryDirectory(prefix="vigil-callsdsp-") as tmp:
        suite = Suite(tmp)
        # the corpus first: the live lines record meanwhile
        names = sorted(n for n in dir(Suite) if n.startswith("test_") and args.k in n)
        names.sort(key=lambda n: not n.startswith("test_announce"))
        try:
            passed, failed, skipped = run_tests(suite, names)
        finally:
            try:
                suite.close()
            except Exception:
                failed += 1
                log("FAIL shutdown\n%s" % traceback.format_exc())
    log("integration_calls_dsp: %d passed, %d failed (%.0f s)" % (passed, failed, time.monotonic() - t_all))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
