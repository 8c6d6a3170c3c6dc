#!/usr/bin/env python3
"""Relay benchmark: vigil's relay against a plain gst-rtsp-server relay.

One 1080p25 H.264 source (camsim replaying the bench clip, GOP 2 s) relayed to
1, 10 and 50 RTSP clients (RTP over TCP) by
  A. vigild: records the camera and relays it from the same connection;
  B. bench/relay_peer: gst-rtsp-server, shared media
     "rtspsrc ! rtph264depay ! rtph264pay", one camera connection per mount.
Both run side by side; for each client count they take turns, in --rounds
rounds (who goes first alternates), so a change in the machine's load reaches
both; only the relay whose turn it is has clients. vigild then runs once more
at the largest N with send_interval_ms = 0 (every packet sent as it comes,
like the peer), taking turns with the peer again, to show what batching the
sends buys.

Per client count N, each turn keeps one anchor client connected (so the
stream runs, as at a central point that is already watching), then N more
clients join 100 ms apart. Measured:
  - time from sending PLAY to the end of the first decodable frame (an IDR
    access unit: the SPS/PPS come in-band or from the SDP) for the N joiners;
  - CPU of the relaying process over a window once every client streams,
    minus the same process with no client (peer: idle). For vigild, whose
    recording's CPU moves with segment rotations, the recording's threads
    (capture, retention, status, main) are subtracted in the same window
    instead, and the no-client figure is taken the same way.

The results replace the "## Relay (bench/bench_relay.py)" section of
bench/RESULTS.md. Python standard library only; needs a C compiler and
pkg-config for the peer.
"""
import argparse
import base64
import datetime as dt
import os
import platform
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

SECTION_TITLE = "## Relay (bench/bench_relay.py)"
CLK_TCK = os.sysconf("SC_CLK_TCK")
MEDIA_SECONDS = 90
PASSWORD = "bench-relay-pw"
JOIN_GAP_S = 0.1
TARGET_CPU = 0.5
TARGET_FIRST_FRAME = 0.25


def log(msg):
    print("[relay %s] %s" % (time.strftime("%H:%M:%S"), msg), file=sys.stderr, flush=True)


class BenchError(Exception):
    pass


def wait_for(what, cond, timeout, interval=0.1):
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise BenchError("timed out after %.0f s waiting for %s" % (timeout, what))
        time.sleep(interval)


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        data = f.read()
    fields = data[data.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


# vigild's threads that record (and would run without the relay).
RECORDING_THREADS = re.compile(r"^(cap:.*|retention|status|vigild)$")


# Streaming threads of vigild's relay pipelines (appsrc "srcN:src").
RELAY_THREADS = re.compile(r"^src\d+:src$")


def threads_named(pid, pattern):
    """The /proc/PID/task paths of the live threads whose name matches."""
    found = []
    for tid in os.listdir("/proc/%d/task" % pid):
        path = "/proc/%d/task/%s" % (pid, tid)
        try:
            with open(path + "/comm") as f:
                if pattern.match(f.read().strip()):
                    found.append(path)
        except OSError:
            pass  # the thread ended meanwhile
    return found


def thread_seconds(pid, pattern):
    """CPU seconds of the process's live threads whose name matches."""
    total = 0
    for path in threads_named(pid, pattern):
        try:
            with open(path + "/stat") as f:
                data = f.read()
        except OSError:
            continue  # the thread ended meanwhile
        fields = data[data.rindex(")") + 2:].split()
        total += int(fields[11]) + int(fields[12])
    return total / CLK_TCK


def rss_mib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


# ---------------------------------------------------------------- the client

class Client(threading.Thread):
    """One RTSP client over TCP: DESCRIBE/SETUP/PLAY, time to the first IDR
    access unit, then reads (and counts) everything until stopped."""

    def __init__(self, port, path, auth):
        super().__init__(daemon=True)
        self.port, self.path, self.auth = port, path, auth
        self.first_frame = None  # seconds from PLAY
        self.error = None
        self.bytes = 0
        self.stop = threading.Event()
        self.ready = threading.Event()

    def run(self):
        try:
            self.session()
        except Exception as e:  # reported by the bench, not raised in a thread
            self.error = "%s: %s" % (type(e).__name__, e)
        finally:
            self.ready.set()

    def session(self):
        s = socket.create_connection(("127.0.0.1", self.port), 15)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self.sock, self.buf, self.cseq = s, b"", 0
        url = "rtsp://127.0.0.1:%d/%s" % (self.port, self.path)
        st, h, body = self.request("DESCRIBE", url, {"Accept": "application/sdp"})
        if st != 200:
            raise BenchError("DESCRIBE -> %d" % st)
        base = h.get("content-base", url + "/")
        controls = [l[len("a=control:"):] for l in body.decode().splitlines()
                    if l.startswith("a=control:") and l != "a=control:*"]
        session = None
        for i, c in enumerate(controls):
            st, h, _ = self.request("SETUP", c if c.startswith("rtsp://") else base + c,
                                    {"Transport": "RTP/AVP/TCP;unicast;interleaved=%d-%d"
                                     % (2 * i, 2 * i + 1)}, session)
            if st != 200:
                raise BenchError("SETUP -> %d" % st)
            session = h["session"].split(";")[0]
        t_play = time.monotonic()
        self.send("PLAY", base, {}, session)
        self.wait_first_idr(t_play)
        self.ready.set()
        s.settimeout(1)
        while not self.stop.is_set():
            try:
                data = s.recv(262144)
            except socket.timeout:
                continue
            if not data:
                raise BenchError("server closed the connection")
            self.bytes += len(data)
        s.close()

    def send(self, method, url, headers, session=None):
        self.cseq += 1
        lines = ["%s %s RTSP/1.0" % (method, url), "CSeq: %d" % self.cseq,
                 "Authorization: " + self.auth] if self.auth else \
            ["%s %s RTSP/1.0" % (method, url), "CSeq: %d" % self.cseq]
        if session:
            lines.append("Session: " + session)
        lines += ["%s: %s" % kv for kv in headers.items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())

    def request(self, method, url, headers, session=None):
        self.send(method, url, headers, session)
        return self.response()

    def fill(self):
        data = self.sock.recv(262144)
        if not data:
            raise BenchError("server closed the connection")
        self.buf += data
        self.bytes += len(data)

    def response(self):
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if not self.buf.startswith(b"$") and end >= 0:
                break
            if self.buf.startswith(b"$"):
                self.packet()
            else:
                self.fill()
        head = self.buf[:end].decode("latin-1").split("\r\n")
        h = {}
        for line in head[1:]:
            k, _, v = line.partition(":")
            h[k.strip().lower()] = v.strip()
        n = int(h.get("content-length", "0"))
        while len(self.buf) < end + 4 + n:
            self.fill()
        body = self.buf[end + 4:end + 4 + n]
        self.buf = self.buf[end + 4 + n:]
        return int(head[0].split()[1]), h, body

    def packet(self):
        while len(self.buf) < 4:
            self.fill()
        if self.buf[:1] != b"$":
            self.response()
            return None
        ch, n = self.buf[1], int.from_bytes(self.buf[2:4], "big")
        while len(self.buf) < 4 + n:
            self.fill()
        pkt = self.buf[4:4 + n]
        self.buf = self.buf[4 + n:]
        return ch, pkt

    def wait_first_idr(self, t_play):
        idr = False
        deadline = t_play + 20
        while time.monotonic() < deadline:
            got = self.packet()
            if not got or got[0] != 0 or len(got[1]) < 14:
                continue
            pkt = got[1]
            p = pkt[12 + 4 * (pkt[0] & 0x0F):]
            t = p[0] & 0x1F
            t = p[1] & 0x1F if t == 28 else (p[3] & 0x1F if t == 24 else t)
            idr |= t == 5
            if pkt[1] & 0x80:  # the access unit is complete
                if idr:
                    self.first_frame = time.monotonic() - t_play
                    return
                idr = False
        raise BenchError("no IDR frame within 20 s of PLAY")


# ---------------------------------------------------------------- processes

class Procs:
    def __init__(self):
        self.procs = []

    def spawn(self, argv, **kw):
        p = subprocess.Popen(argv, start_new_session=True, stdin=subprocess.DEVNULL, **kw)
        self.procs.append(p)
        return p

    def stop(self, p, timeout=10):
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(10)
        return p.returncode

    def kill_all(self):
        for p in self.procs:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.wait(10)


def ready_port(p, what):
    line = p.stdout.readline()
    m = re.match(r"READY port=(\d+)", line or "")
    if not m:
        raise BenchError("%s did not start: %r" % (what, line))
    return int(m.group(1))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# ---------------------------------------------------------------- measuring

def measure_cpu(pid, seconds, exclude=None):
    """Share of a core over the window: the whole process, minus the threads
    matching exclude (in the same window) when given."""
    def now():
        return cpu_seconds(pid) - (thread_seconds(pid, exclude) if exclude else 0)
    c0, t0 = now(), time.monotonic()
    time.sleep(seconds)  # a measurement window, not a wait for a condition
    return (now() - c0) / (time.monotonic() - t0)


def run_clients(pid, port, path, auth, n, args, exclude=None):
    """Anchor + n joiners; returns the measurements."""
    anchor = Client(port, path, auth)
    anchor.start()
    anchor.ready.wait(30)
    if anchor.error or anchor.first_frame is None:
        raise BenchError("anchor client: %s" % anchor.error)
    clients = []
    for _ in range(n):
        c = Client(port, path, auth)
        c.start()
        clients.append(c)
        time.sleep(JOIN_GAP_S)  # clients arrive one after another
    for c in clients:
        c.ready.wait(30)
    errors = [c.error for c in clients if c.error]
    if errors:
        raise BenchError("%d of %d clients failed: %s" % (len(errors), n, errors[0]))
    time.sleep(args.warmup)  # settle before the window
    everyone = [anchor] + clients
    b0 = [c.bytes for c in everyone]
    cpu = measure_cpu(pid, args.seconds, exclude)
    rates = [(c.bytes - b) * 8 / args.seconds / 1e6 for c, b in zip(everyone, b0)]
    rss = rss_mib(pid)
    for c in everyone:
        c.stop.set()
    for c in everyone:
        c.join(5)
    ff = sorted(c.first_frame for c in clients)
    return {"cpu": cpu, "first": ff, "min_mbps": min(rates), "rss": rss,
            "dropped": [c.error for c in everyone if c.error]}


class Relay:
    """One relaying process under test."""

    def __init__(self, name, proc, port, path, auth, exclude=None):
        self.name, self.proc, self.port, self.path = name, proc, port, path
        self.auth, self.exclude, self.idle = auth, exclude, 0.0

    def run(self, n, args):
        return run_clients(self.proc.pid, self.port, self.path, self.auth, n, args, self.exclude)


def start_vigil(procs, args, work, cam_port, send_interval_ms=None):
    """send_interval_ms None: vigild's default."""
    work = tempfile.mkdtemp(prefix="vigil-", dir=work)
    data = os.path.join(work, "vigil-data")
    os.makedirs(data)
    port = free_port()
    conf = os.path.join(work, "vigil.conf")
    interval = "" if send_interval_ms is None else "send_interval_ms = %d\n" % send_interval_ms
    with open(conf, "w") as f:
        f.write("[server]\ndata_dir = %s\nlog_level = warning\nhttp_listen =\n"
                "[archive]\nsegment_seconds = 60\n[relay]\nrtsp_listen = 127.0.0.1:%d\n"
                "max_clients = 200\nmax_clients_per_ip = 200\n%s"
                "[source cam]\nurl = rtsp://127.0.0.1:%d/bench0\nkind = video\n"
                % (data, port, interval, cam_port))
    subprocess.run([args.vigilctl, "-c", conf, "user", "add", "bench", "--role", "admin"],
                   input=PASSWORD + "\n", text=True, capture_output=True, check=True)
    log_f = open(os.path.join(work, "vigild.log"), "w")
    p = procs.spawn([args.vigild, "-c", conf], stdout=log_f, stderr=subprocess.STDOUT)
    log_f.close()
    auth = "Basic " + base64.b64encode(("bench:" + PASSWORD).encode()).decode()
    # recording and relaying once a client gets a frame
    wait_for("vigild relaying", lambda: probe(port, "cam", auth), 60, interval=0.5)
    name = "vigil" if send_interval_ms is None else "vigil (send_interval_ms %d)" % send_interval_ms
    r = Relay(name, p, port, "cam", auth, RECORDING_THREADS)
    # vigild keeps an unwatched stream's pipeline 10 s for the next client:
    # the no-client figure is taken once the probe's is gone.
    wait_for("vigild's relay pipeline let go", lambda: not threads_named(p.pid, RELAY_THREADS), 60,
             interval=0.5)
    time.sleep(args.warmup)
    # below 0 is noise of the subtraction
    r.idle = max(measure_cpu(p.pid, args.seconds, RECORDING_THREADS), 0.0)
    return r


def start_peer(procs, args, cam_port):
    p = procs.spawn([args.peer, "rtsp://127.0.0.1:%d/bench1" % cam_port],
                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    r = Relay("peer", p, ready_port(p, "relay_peer"), "peer", None)
    time.sleep(args.warmup)
    r.idle = measure_cpu(p.pid, args.seconds)
    return r


def rounds(relays, n, args):
    """args.rounds rounds of n clients, the relays taking turns (who goes
    first alternates), so a change in the machine's load reaches both.
    Returns {relay name: [run per round]}."""
    out = {r.name: [] for r in relays}
    for i in range(args.rounds):
        for r in (relays if i % 2 == 0 else relays[::-1]):
            run = r.run(n, args)
            run["cpu"] = max(run["cpu"] - r.idle, 0)
            out[r.name].append(run)
            log("%s N=%d round %d: %.1f%% CPU (idle %.1f%%), first frame median %.0f ms" % (
                r.name, n, i + 1, run["cpu"] * 100, r.idle * 100,
                statistics.median(run["first"]) * 1000))
            time.sleep(args.pause)
    return out


def summary(runs, other=None):
    """Medians over the rounds; ratio: median of the per-round ratios to other."""
    s = {"cpu": statistics.median(r["cpu"] for r in runs),
         "cpus": [r["cpu"] for r in runs],
         "first": [x for r in runs for x in r["first"]],
         "min_mbps": min(r["min_mbps"] for r in runs), "rss": runs[-1]["rss"]}
    if other:
        s["ratio"] = statistics.median(a["cpu"] / b["cpu"] if b["cpu"] else float("inf")
                                       for a, b in zip(runs, other))
    return s


def probe(port, path, auth):
    c = Client(port, path, auth)
    c.start()
    c.ready.wait(20)
    c.stop.set()
    return c.first_frame is not None


# ---------------------------------------------------------------- report

def pct(x):
    return "%.1f" % (x * 100)


def ms(x):
    return "%.0f" % (x * 1000)


def p90(xs):
    return sorted(xs)[min(len(xs) - 1, int(round(0.9 * (len(xs) - 1))))]


def render(res, idle, counts, args, info, started, cmdline, res0=None):
    """res: {N: {"vigil": summary, "peer": summary}}; idle: {name: CPU share};
    res0: the send_interval_ms = 0 rounds at the largest N, or None."""
    lines = [SECTION_TITLE, "",
             "Run %s by `%s`." % (started.strftime("%Y-%m-%d %H:%M UTC"), cmdline), "",
             "- Machine: %(nproc)s CPUs, %(cpu)s, Linux %(kernel)s, Python %(python)s; load "
             "average %(load).1f at the start (other work on the machine makes figures noisier)"
             % info,
             "- vigild: git %s" % info["rev"],
             "- Source: camsim replaying `%s` (1920×1080, 25 fps, H.264 ~4 Mbit/s, GOP 2 s); "
             "vigild records `/bench0` (60 s segments) and relays it, the peer relays `/bench1`."
             % os.path.basename(args.media),
             "- Peer: `bench/relay_peer.c`, gst-rtsp-server %s, shared media "
             "`rtspsrc protocols=tcp latency=200 ! rtph264depay ! rtph264pay config-interval=-1`."
             % info["gst"],
             "- Clients: RTP over TCP (interleaved), one anchor client plus N joiners arriving "
             "%d ms apart. CPU = utime+stime of the relaying process (all threads) over a %d s "
             "window once every client streams, minus the same with no client. For vigild the "
             "recording's threads (capture, retention, status, main; their CPU moves with "
             "segment rotations) are subtracted in the same window, and the no-client figure "
             "is taken the same way (%s%% of a core); peer with no client: %s%%. Per client = "
             "that / (N + 1)."
             % (JOIN_GAP_S * 1000, args.seconds, pct(idle["vigil"]), pct(idle["peer"])),
             "- First frame: from sending PLAY to the last packet of the first IDR access "
             "unit, over the N joiners of every round (a stream that already runs).",
             "- Both relays run side by side; for each N they take turns, %d rounds (who goes "
             "first alternates), and only the one whose turn it is has clients. CPU figures "
             "are medians over the rounds, the ratio is the median of the per-round ratios. "
             "The clients run in this script, on the same machine." % args.rounds, "",
             "| clients (N + anchor) | relay CPU total, % of a core (vigil / peer) | "
             "CPU per client, % (vigil / peer) | ratio | first frame median, ms (vigil / peer) "
             "| p90, ms | ratio (median) | slowest client, Mbit/s (vigil / peer) |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    verdict = []
    for n in counts:
        a, b = res[n]["vigil"], res[n]["peer"]
        fa, fb = statistics.median(a["first"]), statistics.median(b["first"])
        fr = fa / fb if fb else float("inf")
        verdict.append((n, a["ratio"], fr))
        lines.append("| %d + 1 | %s / %s | %.2f / %.2f | %.2f× | %s / %s | %s / %s | %.3f× "
                     "| %.1f / %.1f |" % (n, pct(a["cpu"]), pct(b["cpu"]), a["cpu"] * 100 / (n + 1),
                                          b["cpu"] * 100 / (n + 1), a["ratio"], ms(fa), ms(fb),
                                          ms(p90(a["first"])), ms(p90(b["first"])), fr,
                                          a["min_mbps"], b["min_mbps"]))
    lines.append("")
    for n in counts:
        lines.append("- N = %d, total CPU per round, %% of a core: vigil %s; peer %s." % (
            n, ", ".join(pct(x) for x in res[n]["vigil"]["cpus"]),
            ", ".join(pct(x) for x in res[n]["peer"]["cpus"])))
    for n, cr, fr in verdict:
        lines.append("- N = %d: CPU per client %.2f× the peer's (target ≤ %.2f×: %s), first frame "
                     "%.3f× (target ≤ %.2f×: %s)." % (
                         n, cr, TARGET_CPU, "met" if cr <= TARGET_CPU else "NOT met", fr,
                         TARGET_FIRST_FRAME, "met" if fr <= TARGET_FIRST_FRAME else "NOT met"))
    if res0:
        n = counts[-1]
        a = res0["vigil"]
        lines.append("- The same vigild with `send_interval_ms = 0` (each packet sent to the "
                     "clients as the payloader makes it: one send per frame, like the peer), "
                     "N = %d, against the peer in %d more rounds: %s %% of a core in total "
                     "(rounds: %s; peer %s), CPU per client %.2f× the peer's." % (
                         n, args.rounds, pct(a["cpu"]), ", ".join(pct(x) for x in a["cpus"]),
                         ", ".join(pct(x) for x in res0["peer"]["cpus"]), a["ratio"]))
    lines.append("- RSS at the end of the largest run: vigild %.0f MiB (recording included), "
                 "peer %.0f MiB." % (res[counts[-1]]["vigil"]["rss"], res[counts[-1]]["peer"]["rss"]))
    lines.append("- How: both serve one shared media per source. vigil's is fed from the "
                 "recording's own packets (no second camera connection, no depayloading); its "
                 "TCP clients get 8 KiB RTP packets (the peer: 1400 B) from a fan-out that "
                 "starts each new client on the cached GOP, so the first frame is a keyframe "
                 "at once, where the peer's joiners wait for the camera's next keyframe (up "
                 "to a GOP). The peer's fixed cost (rtspsrc, jitterbuffer, depayloader) is in "
                 "its total, as vigil's (one payloader, RTP session) is in vigil's. Beyond the "
                 "fixed costs, most of a client's cost is the kernel's work per send (on "
                 "loopback it also carries the receiving side: queueing the data and waking "
                 "the reader), whatever the send's size. The peer sends each frame as it comes "
                 "(25 sends a second per client); vigil hands a client its packets together "
                 "every `send_interval_ms` (default 150 ms: 4 frames, about 6 sends a second), "
                 "which delays a packet by at most that interval, far below what RTSP players "
                 "buffer (VLC: 1 s).")
    lines.append("- Exit: vigild %s, peer %s." % (info["rc_vigil"], info["rc_peer"]))
    lines.append("")
    return "\n".join(lines)


def write_section(path, section):
    old = open(path).read() if os.path.exists(path) else ""
    if not old.strip():
        new = "# vigil benchmark results\n\n" + section.rstrip("\n") + "\n"
    else:
        pat = re.compile(r"^" + re.escape(SECTION_TITLE) + r"[ \t]*\n.*?(?=^## (?!#)|\Z)",
                         re.M | re.S)
        if pat.search(old):
            new = pat.sub(lambda _m: section.rstrip("\n") + "\n\n", old, count=1).rstrip("\n") + "\n"
        else:
            new = old.rstrip("\n") + "\n\n" + section.rstrip("\n") + "\n"
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(new)
    os.replace(tmp, path)


def machine_info():
    model = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True).stdout.strip()
        rev = head + (" with uncommitted changes" if dirty else "")
    except OSError:
        rev = "unknown"
    gst = subprocess.run(["pkg-config", "--modversion", "gstreamer-rtsp-server-1.0"],
                         capture_output=True, text=True).stdout.strip()
    return {"nproc": os.cpu_count(), "cpu": model, "kernel": platform.release(),
            "python": platform.python_version(), "rev": rev, "gst": gst,
            "load": os.getloadavg()[0]}


def build_peer(repo, build):
    out = os.path.join(build, "bench", "relay_peer")
    src = os.path.join(repo, "bench", "relay_peer.c")
    if os.path.exists(out) and os.path.getmtime(out) >= os.path.getmtime(src):
        return out
    os.makedirs(os.path.dirname(out), exist_ok=True)
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "gstreamer-rtsp-server-1.0"],
                           capture_output=True, text=True, check=True).stdout.split()
    subprocess.run(["cc", "-O2", "-std=c11", "-Wall", "-Wextra", "-Werror", src, "-o", out] +
                   flags, check=True)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--clients", default="1,10,50")
    ap.add_argument("--seconds", type=float, default=15.0, help="CPU window (15)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--warmup", type=float, default=3.0)
    ap.add_argument("--pause", type=float, default=2.0)
    ap.add_argument("--results", default=None)
    ap.add_argument("--no-unbatched", action="store_true",
                    help="skip the extra vigild run with send_interval_ms = 0")
    args = ap.parse_args()
    counts = [int(x) for x in args.clients.split(",")]
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    os.chdir(repo)
    build = os.path.abspath(args.build)
    args.vigild, args.vigilctl = os.path.join(build, "vigild"), os.path.join(build, "vigilctl")
    camsim = os.path.join(build, "camsim")
    args.results = os.path.abspath(args.results or os.path.join(repo, "bench", "RESULTS.md"))
    args.peer = build_peer(repo, build)
    args.media = os.path.join(build, "bench-media", "bench-1080p25-%ds.mp4" % MEDIA_SECONDS)
    os.makedirs(os.path.dirname(args.media), exist_ok=True)
    subprocess.run(["sh", "tests/tools/make-bench-media.sh", args.media, str(MEDIA_SECONDS)],
                   check=True)
    started = dt.datetime.now(dt.timezone.utc)
    info = machine_info()
    procs = Procs()
    res, res0 = {}, None
    try:
        with tempfile.TemporaryDirectory(prefix="vigil-bench-relay-") as work:
            cam = procs.spawn([camsim, "--port", "0", "--bench-file", args.media,
                               "--bench-mounts", "2"], stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True)
            cam_port = ready_port(cam, "camsim")
            vigil = start_vigil(procs, args, work, cam_port)
            peer = start_peer(procs, args, cam_port)
            idle = {"vigil": vigil.idle, "peer": peer.idle}
            for n in counts:
                out = rounds([vigil, peer], n, args)
                res[n] = {"vigil": summary(out[vigil.name], out["peer"]),
                          "peer": summary(out["peer"])}
            info["rc_vigil"] = procs.stop(vigil.proc)
            if not args.no_unbatched:
                vigil0 = start_vigil(procs, args, work, cam_port, send_interval_ms=0)
                out = rounds([vigil0, peer], counts[-1], args)
                res0 = {"vigil": summary(out[vigil0.name], out["peer"]),
                        "peer": summary(out["peer"])}
                procs.stop(vigil0.proc)
            info["rc_peer"] = procs.stop(peer.proc)
            procs.stop(cam)
    finally:
        procs.kill_all()
    cmdline = "python3 bench/bench_relay.py " + " ".join(sys.argv[1:])
    section = render(res, idle, counts, args, info, started, cmdline.strip(), res0)
    write_section(args.results, section)
    print(section)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as e:
        log("error: %s" % e)
        sys.exit(1)
