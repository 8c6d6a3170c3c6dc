#!/usr/bin/env python3
"""The calls module's signal processing, end to end.

- The announcement check over a seeded corpus of synthetic calls
  (tests/tools/announce_corpus.py: espeak-ng speech, sox for G.711, level,
  noise, speed, late starts, cut announcements), classified by
  build/tests/announce_eval: at least 99 % correct and no call without the
  announcement reported present. The full corpus (>= 400 calls) runs in
  `make bench` (bench/bench_announce.py).
- Bad reference files are refused with a reason, never crash.
Ends with "N passed, N failed"; exit status 1 on any failure.
"""
import argparse
import os
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import integration  # noqa: E402
from integration import log, run_tests  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS_CALLS = 126  # six blocks of every difficulty: 54 with, 54 without, 12 cut, 6 short
CORPUS_SEED = 17


def wav_bytes(samples, rate=8000, fmt=1, bits=16):
    data = b"".join(struct.pack("<h", s) for s in samples) if bits == 16 else bytes(samples)
    return (b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVE" +
            b"fmt " + struct.pack("<IHHIIHH", 16, fmt, 1, rate, rate * bits // 8, bits // 8, bits) +
            b"data" + struct.pack("<I", len(data)) + data)


class Suite:
    def __init__(self, tmp):
        self.tmp = tmp
        self.eval = os.path.join(integration.BUILD, "tests", "announce_eval")
        self.corpus = None

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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("-k", default="")
    args = ap.parse_args()
    integration.BUILD = args.build
    t_all = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="vigil-callsdsp-") as tmp:
        suite = Suite(tmp)
        names = sorted(n for n in dir(Suite) if n.startswith("test_") and args.k in n)
        passed, failed, skipped = run_tests(suite, names)
    log("integration_calls_dsp: %d passed, %d failed (%.0f s)" % (passed, failed, time.monotonic() - t_all))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
