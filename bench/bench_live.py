#!/usr/bin/env python3
"""bench_live: browser live view (WHEP), vigild against the straightforward
design, side by side in one run on one camera of 720p25 H.264 + PCMA (camsim
/cam720-g711):

  A. vigild's live module: viewers fed from capture's packets
  B. bench/live_peer: one rtspsrc ! depay ! pay ! webrtcbin pipeline (and one
     camera connection) per viewer

Both take the same WHEP POST, so the same clients drive them:
  - CPU and memory per viewer at 1, 4 and 16 viewers: the server process's
    CPU over a window with N viewers of bench/whep_client.py (webrtcbin,
    python3-gi) minus its CPU with none; RSS likewise;
  - first-frame time p50/p90 over 20 joins and the video jitter-buffer delay,
    from one headless chromium page (tests/ui/bench_live.mjs).

The results replace the "## Live view (bench/bench_live.py)" section of
bench/RESULTS.md.
"""
import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests"))
import integration  # noqa: E402
from integration import Camsim, wait_for  # noqa: E402
from integration_web import PASSWORD, WebVigil  # noqa: E402

SECTION_TITLE = "## Live view (bench/bench_live.py)"
CLK_TCK = os.sysconf("SC_CLK_TCK")
SYSTEM_PYTHON = "/usr/bin/python3"  # python3-gi is Debian's


def log(msg):
    print("[live %s] %s" % (time.strftime("%H:%M:%S"), msg), file=sys.stderr, flush=True)


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        data = f.read()
    fields = data[data.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_mib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def cpu_share(pid, seconds):
    """The process's CPU over a window, in % of one core."""
    c0, t0 = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    return 100.0 * (cpu_seconds(pid) - c0) / (time.monotonic() - t0)


def build_peer(build):
    out = os.path.join(build, "bench", "live_peer")
    src = os.path.join(REPO, "bench", "live_peer.c")
    if os.path.exists(out) and os.path.getmtime(out) >= os.path.getmtime(src):
        return out
    os.makedirs(os.path.dirname(out), exist_ok=True)
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "gstreamer-webrtc-1.0",
                            "gstreamer-sdp-1.0", "libmicrohttpd"],
                           capture_output=True, text=True, check=True).stdout.split()
    subprocess.run(["cc", "-O2", "-std=c11", "-D_GNU_SOURCE", "-Wall", "-Wextra", "-Werror",
                    "-Wno-error=deprecated-declarations", src, "-o", out] + flags, check=True)
    return out


def login(port):
    """A session cookie of the bench's user, once vigild answers."""
    def once():
        try:
            return login_once(port)
        except OSError:
            return None
    return wait_for("vigild's HTTP API", once, 60, interval=0.5)


def login_once(port):
    import urllib.request
    req = urllib.request.Request("http://127.0.0.1:%d/api/v1/login" % port,
                                 data=json.dumps({"user": "watch", "password": PASSWORD}).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.headers["Set-Cookie"].split(";")[0]


class Target:
    def __init__(self, name, pid, origin, whep, cookie=None, user=None):
        self.name, self.pid, self.origin, self.whep = name, pid, origin, whep
        self.cookie, self.user = cookie, user


def viewers_run(t, n, seconds, base_cpu, base_rss):
    """n webrtcbin viewers on t: CPU and RSS of t's process per viewer."""
    cmd = [SYSTEM_PYTHON, os.path.join(REPO, "bench", "whep_client.py"), t.origin + t.whep, str(n)]
    if t.cookie:
        cmd += ["--cookie", t.cookie]
    p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        def up():
            line = p.stdout.readline()
            if not line:
                raise RuntimeError("whep_client ended")
            if line.startswith("ERROR"):
                raise RuntimeError("whep_client: " + line.strip())
            m = re.match(r"UP (\d+)", line)
            return m and int(m.group(1)) >= n
        wait_for("%d viewers of %s receiving" % (n, t.name), up, 60 + 3 * n)
        time.sleep(2)  # past the joins
        cpu = cpu_share(t.pid, seconds)
        rss = rss_mib(t.pid)
    finally:
        p.stdin.close()
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    return {"n": n, "cpu": cpu, "cpu_per_viewer": (cpu - base_cpu) / n,
            "rss": rss, "rss_per_viewer": (rss - base_rss) / n}


def joins(t, count):
    env = dict(os.environ, VIGIL_URL=t.origin, VIGIL_PASSWORD=PASSWORD)
    args = ["node", "bench_live.mjs", t.origin, t.whep, str(count)] + ([t.user] if t.user else [])
    out = subprocess.run(args, cwd=os.path.join(REPO, "tests", "ui"), env=env, capture_output=True,
                         text=True, timeout=600)
    if out.returncode != 0:
        raise RuntimeError("bench_live.mjs: " + out.stderr[-800:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def pctl(xs, q):
    xs = sorted(x for x in xs if x is not None)
    if not xs:
        return None
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def measure(t, counts, seconds, n_joins):
    time.sleep(2)
    base_cpu = cpu_share(t.pid, seconds)
    base_rss = rss_mib(t.pid)
    log("%s idle: %.1f %% CPU, %.1f MiB" % (t.name, base_cpu, base_rss))
    runs = []
    for n in counts:
        try:
            r = viewers_run(t, n, seconds, base_cpu, base_rss)
        except (RuntimeError, AssertionError) as e:
            # reported as such: a design that cannot seat n viewers here is a result
            log("%s %d viewers: failed: %s" % (t.name, n, e))
            runs.append({"n": n, "cpu": None, "cpu_per_viewer": None, "rss": None,
                         "rss_per_viewer": None, "failed": str(e)})
            continue
        log("%s %d viewers: %.1f %% CPU (%.2f per viewer), %.1f MiB" % (
            t.name, n, r["cpu"], r["cpu_per_viewer"], r["rss"]))
        runs.append(r)
        time.sleep(2)
    rows = joins(t, n_joins)
    errors = [r["error"] for r in rows if "error" in r]
    ok = [r for r in rows if "error" not in r]
    ff = [r["fromPost"] for r in ok]
    res = {"idle_cpu": base_cpu, "idle_rss": base_rss, "runs": runs, "joins": len(rows),
           "errors": errors[:3], "n_errors": len(errors),
           "ff_p50": pctl(ff, 0.5), "ff_p90": pctl(ff, 0.9),
           "ff_start_p50": pctl([r["fromStart"] for r in ok], 0.5),
           "jitter_p50": pctl([r["jitterMs"] for r in ok], 0.5),
           "codecs": sorted({"%s %s" % (r.get("video"), r.get("audio")) for r in ok}),
           "width": sorted({r.get("width") for r in ok})}
    log("%s first frame p50 %s p90 %s ms; jitter buffer p50 %s ms; %d errors" % (
        t.name, res["ff_p50"], res["ff_p90"], res["jitter_p50"], len(errors)))
    return res


def fmt(x, digits=1):
    return "—" if x is None else ("%.*f" % (digits, x))


def ratio(a, b):
    return "—" if a is None or b is None or b <= 0 else "%.2f×" % (a / b)


def render(res, counts, args, started):
    v, p = res["vigild"], res["peer"]
    lines = [SECTION_TITLE, "",
             "One camera of 720p25 H.264 (no B-frames) + PCMA (camsim `/cam720-g711`), %s, "
             "%d cores (%s), GStreamer %s, %s; run %s (%s)." % (
                 platform.release(), os.cpu_count(), args["cpu"], args["gst"], args["chromium"],
                 started, args["rev"]), "",
             "- vigild: the live module, viewers fed from capture's packets (one camera connection).",
             "- reference: `bench/live_peer.c`, one `rtspsrc ! depay ! pay ! webrtcbin` pipeline per "
             "viewer (and one camera connection per viewer), behind the same WHEP POST.",
             "- Many viewers: `bench/whep_client.py` (webrtcbin via python3-gi, recvonly H.264 "
             "42e01f + PCMA, non-trickle), all in one process. CPU is the server process's over "
             "%d s with N viewers minus its CPU with none (vigild records the camera meanwhile), "
             "in %% of one core; memory is RSS growth." % args["seconds"],
             "- First frame: one headless chromium page, %d joins one after another, from the "
             "POST of the offer to the first decoded frame (`requestVideoFrameCallback`); "
             "jitter-buffer delay = `jitterBufferDelay / jitterBufferEmittedCount` of the "
             "inbound video after 3 s." % args["joins"], "",
             "| viewers | vigild CPU/viewer | reference CPU/viewer | ratio | vigild RSS/viewer | "
             "reference RSS/viewer |",
             "|---|---|---|---|---|---|"]
    for i, n in enumerate(counts):
        a, b = v["runs"][i], p["runs"][i]
        lines.append("| %d | %s %% | %s %% | %s | %s MiB | %s MiB |" % (
            n, fmt(a["cpu_per_viewer"], 2), fmt(b["cpu_per_viewer"], 2),
            ratio(a["cpu_per_viewer"], b["cpu_per_viewer"]),
            fmt(a["rss_per_viewer"], 2), fmt(b["rss_per_viewer"], 2)))
    lines += ["", "| | vigild | reference | ratio |", "|---|---|---|---|",
              "| first frame p50 (from POST) | %s ms | %s ms | %s |" % (
                  fmt(v["ff_p50"], 0), fmt(p["ff_p50"], 0), ratio(v["ff_p50"], p["ff_p50"])),
              "| first frame p90 (from POST) | %s ms | %s ms | %s |" % (
                  fmt(v["ff_p90"], 0), fmt(p["ff_p90"], 0), ratio(v["ff_p90"], p["ff_p90"])),
              "| first frame p50 (from new RTCPeerConnection) | %s ms | %s ms | %s |" % (
                  fmt(v["ff_start_p50"], 0), fmt(p["ff_start_p50"], 0),
                  ratio(v["ff_start_p50"], p["ff_start_p50"])),
              "| video jitter-buffer delay p50 | %s ms | %s ms | %s |" % (
                  fmt(v["jitter_p50"], 0), fmt(p["jitter_p50"], 0),
                  ratio(v["jitter_p50"], p["jitter_p50"])),
              "| idle process (no viewer) | %s %% CPU, %s MiB | %s %% CPU, %s MiB | |" % (
                  fmt(v["idle_cpu"]), fmt(v["idle_rss"]), fmt(p["idle_cpu"]), fmt(p["idle_rss"])),
              "| joins that failed | %d of %d | %d of %d | |" % (
                  v["n_errors"], v["joins"], p["n_errors"], p["joins"]),
              "", "Codecs the browser got: vigild %s, reference %s; frame width %s / %s." % (
                  ", ".join(v["codecs"]) or "—", ", ".join(p["codecs"]) or "—",
                  v["width"], p["width"])]
    for who in ("vigild", "peer"):
        for r in res[who]["runs"]:
            if r.get("failed"):
                lines.append("%s with %d viewers: not measured: %s." % (
                    "vigild" if who == "vigild" else "reference", r["n"], r["failed"]))
        if res[who]["errors"]:
            lines.append("%s join errors (first): %s" % (who, "; ".join(map(str, res[who]["errors"]))))
    return "\n".join(lines) + "\n"


def write_section(path, section):
    old = open(path).read() if os.path.exists(path) else ""
    pat = re.compile(r"^" + re.escape(SECTION_TITLE) + r"[ \t]*\n.*?(?=^## (?!#)|\Z)", re.M | re.S)
    if pat.search(old):
        new = pat.sub(lambda _m: section.rstrip("\n") + "\n\n", old, count=1).rstrip("\n") + "\n"
    else:
        new = old.rstrip("\n") + "\n\n" + section.rstrip("\n") + "\n"
    with open(path + ".tmp", "w") as f:
        f.write(new)
    os.replace(path + ".tmp", path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--viewers", default="1,4,16")
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--joins", type=int, default=20)
    ap.add_argument("--results", default=os.path.join(REPO, "bench", "RESULTS.md"))
    args = ap.parse_args()
    integration.BUILD = args.build
    counts = [int(x) for x in args.viewers.split(",")]
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    peer_bin = build_peer(args.build)
    res = {}
    with tempfile.TemporaryDirectory(prefix="vigil-bench-live-") as tmp:
        cam = Camsim()
        peer = None
        port = integration.free_port()
        v = WebVigil(os.path.join(tmp, "v"), [("cam", cam.url("cam720-g711"), "video")],
                     "http_listen = 127.0.0.1:%d\n" % port,
                     extra="[live]\nenabled = yes\nmax_viewers = 100\nmax_viewers_per_user = 100\n")
        v.add_user("watch", "security")
        v.start()
        try:
            wait_for("cam recording", lambda: len(v.segments("cam")) >= 1, 60)
            target = Target("vigild", v.proc.pid, "http://127.0.0.1:%d" % port,
                            "/api/v1/sources/cam/whep", cookie=login(port), user="watch")
            res["vigild"] = measure(target, counts, args.seconds, args.joins)
            peer = subprocess.Popen([peer_bin, cam.url("cam720-g711")], stdout=subprocess.PIPE,
                                    text=True)
            m = re.match(r"READY port=(\d+)", peer.stdout.readline())
            if not m:
                raise RuntimeError("live_peer did not start")
            target = Target("reference", peer.pid, "http://127.0.0.1:%s" % m.group(1),
                            "/api/v1/sources/cam/whep")
            res["peer"] = measure(target, counts, args.seconds, args.joins)
        finally:
            if peer:
                peer.terminate()
                peer.wait(timeout=30)
            v.stop()
            cam.stop()
    chromium = subprocess.run(["/usr/bin/chromium", "--version"], capture_output=True,
                              text=True).stdout.strip()
    cpu = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                         cwd=REPO).stdout.strip()
    gst = subprocess.run(["pkg-config", "--modversion", "gstreamer-webrtc-1.0"],
                         capture_output=True, text=True).stdout.strip()
    section = render(res, counts, {"seconds": args.seconds, "joins": args.joins, "cpu": cpu,
                                   "gst": gst, "chromium": chromium, "rev": rev}, started)
    print(section)
    write_section(args.results, section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
