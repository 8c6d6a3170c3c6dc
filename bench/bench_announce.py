#!/usr/bin/env python3
"""Announcement check benchmark: the full synthetic corpus (>= 400 calls,
tests/tools/announce_corpus.py: espeak-ng speech, sox for A-law/mu-law,
+-12 dB, 10 dB SNR noise, late starts, +-3 % speed, announcements cut after
40 %, calls shorter than it), classified by build/tests/announce_eval:
accuracy per difficulty, false "present" on calls without the announcement,
CPU per hour of audio and calls checked per second, and what the voice
activity detector costs per line. Writes its section of bench/RESULTS.md.
Python standard library only.
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

SECTION = "## Announcement check (bench/bench_announce.py)"
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def write_section(path, text):
    old = open(path).read() if os.path.exists(path) else "# Benchmark results\n"
    start = old.find(SECTION)
    if start >= 0:
        nxt = old.find("\n## ", start + len(SECTION))
        old = old[:start].rstrip("\n") + ("\n\n" + old[nxt + 1:] if nxt >= 0 else "\n")
    with open(path, "w") as f:
        f.write(old.rstrip("\n") + "\n\n" + text)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--results", default="bench/RESULTS.md")
    ap.add_argument("--calls", type=int, default=420)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="vigil-announce-bench-") as tmp:
        t0 = time.monotonic()
        subprocess.run([sys.executable, os.path.join(REPO, "tests", "tools", "announce_corpus.py"),
                        "--out", tmp, "--calls", str(args.calls), "--seed", str(args.seed)], check=True)
        gen_s = time.monotonic() - t0
        p = subprocess.run([os.path.join(args.build, "tests", "announce_eval"), "--ref",
                            os.path.join(tmp, "ref.wav"), "--manifest", os.path.join(tmp, "corpus.tsv"),
                            "--markdown", "--vad", "--min-accuracy", "0.99", "--max-false-present", "0.005"],
                           capture_output=True, text=True)
    print(p.stdout, end="")
    load = os.getloadavg()[0]
    text = (SECTION + "\n\n"
            "%s, %d calls (seed %d; corpus built in %.0f s), %d cores, load average %.1f while it ran. "
            "The reference is a 7.4 s Russian announcement (espeak-ng); calls are 8 kHz G.711 "
            "(PCM for `clean`), each searched over its first 20 s (the window) plus the announcement's "
            "length. CPU is the check's own (decoding the WAV files excluded); calls/s per core "
            "is from that CPU, the other from wall time including reading the files (low when the "
            "machine is shared). `unknown` is right for `short` (a call shorter than the "
            "announcement); `partial` for `cut40`.\n\n"
            % (time.strftime("%Y-%m-%d"), args.calls, args.seed, gen_s, os.cpu_count() or 0, load)
            + p.stdout.strip() + "\n")
    write_section(args.results, text)
    return p.returncode


if __name__ == "__main__":
    sys.exit(main())
