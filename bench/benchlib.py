"""Helpers the benchmarks share: their sections of bench/RESULTS.md, and the
record of a generated index kept for a later run (--dir, --generate-only)."""
import json
import os

GENERATED = "generated.json"


def generated(root, calls):
    """What an earlier run recorded of the index it generated in root (a
    dict), or None when there is none. Exits when it holds another size."""
    path = os.path.join(root, GENERATED)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        kept = json.load(f)
    if kept["calls"] != calls:
        raise SystemExit("%s holds %d calls, not %d" % (root, kept["calls"], calls))
    print("reusing the index of %d calls generated before in %s" % (kept["n"], root), flush=True)
    return kept


def note_generated(root, **facts):
    """Records facts (calls, end_us, n, ...) of the index just generated in root."""
    with open(os.path.join(root, GENERATED), "w") as f:
        json.dump(facts, f)


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
