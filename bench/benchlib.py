"""Helpers the benchmarks share: their sections of bench/RESULTS.md."""
import os


def write_section(path, title, text):
    """Replaces the section headed title in the results file at path (or
    appends it); text starts with that heading. Other sections are kept as
    they are."""
    old = open(path).read() if os.path.exists(path) else "# Benchmark results\n"
    start = old.find(title)
    if start >= 0:
        nxt = old.find("\n## ", start + len(title))
        old = old[:start].rstrip("\n") + ("\n\n" + old[nxt + 1:] if nxt >= 0 else "\n")
    with open(path, "w") as f:
        f.write(old.rstrip("\n") + "\n\n" + text)
