#!/usr/bin/python3
"""`make bench`: Kamailio CPU and Redis work per basic call, vpbx (Python KEMI) next to the
same routing in Kamailio's native language (bench/native.cfg).

One run starts a private vpbx stack (Redis, rtpengine, Kamailio) on free ports, then a
native Kamailio that uses the same Redis and rtpengine, and drives the same SIPp load
through each: INVITE with SDP -> 180/200 -> ACK -> pause -> BYE, from one open extension
to another.
See docs/benchmarks.md for what is measured and how.

Environment: BENCH_CALLS (default 600), BENCH_RATE (calls/s, default 50), BENCH_CODES
(feature codes timed, default 60), BENCH_ONLY=codes (only the feature-code latency),
BENCH_KEEP=1 keeps the work directory (logs, SIPp error files) even when all went well.
"""
import dataclasses
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path[:0] = [str(ROOT / "kemi"), str(ROOT / "tests")]    # tests/ports.py: free ports

import transitions              # noqa: E402  (bench/, on sys.path as the script's folder)
from sipload import Processes, private_config, register, sipp, sipp_successes, wait  # noqa: E402
from vpbx.tooling import stack          # noqa: E402  (needs the sys.path entry above)
from ports import free_port    # noqa: E402
from vpbx.adapters.redis.provisioning_store import ProvisioningStore    # noqa: E402

CALLS = int(os.environ.get("BENCH_CALLS", "600"))
RATE = int(os.environ.get("BENCH_RATE", "50"))
WARMUP = 50             # unmeasured calls first: Redis connections, Python imports, caches
ROUNDS = 3              # the measured calls, in rounds alternating between the two proxies
HOLD_MS = 200           # ACK -> BYE
CHILDREN = 4
RTP_PORTS = "32000-32999"   # the tests use 31000-31999, `make run` 30000-30999
# Each proxy calls its own callee: both keep registrations in the same Redis keys.
TENANT, CALLER, CALLEES = "bench.test", "100", {"vpbx": "101", "native": "102"}
GOAL = "goal: ratio <= 1.25, <= 3 Redis round trips per basic call"


# ---- processes -------------------------------------------------------------

def kamailio_cpu(pgid):
    """CPU time of the whole Kamailio group, in seconds: (utime+stime+cutime+cstime from
    /proc/PID/stat, in clock ticks; the same from /proc/PID/task/*/schedstat, in ns)."""
    ticks, ns = 0, 0
    for pid, fields in stack.group_pids(pgid):
        ticks += sum(int(x) for x in fields[11:15])
        try:
            for task in Path(f"/proc/{pid}/task").iterdir():
                ns += int((task / "schedstat").read_text().split()[0])
        except OSError:
            pass
    return ticks / os.sysconf("SC_CLK_TCK"), ns / 1e9


def redis_counters(r):
    """(commands, socket reads) Redis has processed so far, from one INFO. Redis reads a
    request, or a whole pipeline, from a client socket in one read: reads = round trips."""
    info = r.info("all")
    commands = sum(v["calls"] for k, v in info.items()
                   if k.startswith("cmdstat_") and k != "cmdstat_info")
    return commands, info["total_reads_processed"]


# ---- SIP -------------------------------------------------------------------

def caller_load(procs, work, name, target, calls):
    """Place `calls` calls at RATE through the target proxy; returns how many succeeded."""
    proc = sipp(procs, work, name, "uac.xml", "-p", free_port(), "-s", target.callee,
                "-set", "from", CALLER, "-set", "domain", TENANT,
                "-r", RATE, "-m", calls, "-d", HOLD_MS, "-recv_timeout", "10000",
                f"127.0.0.1:{target.port}")
    wait(proc, calls / RATE + 30)
    return sipp_successes(work, name)


# ---- one configuration -----------------------------------------------------

@dataclasses.dataclass
class Target:
    """A proxy under test and what was measured through it."""
    name: str
    port: int                   # SIP (UDP)
    callee: str                 # extension the calls go to
    pgid: int                   # Kamailio's process group
    uas: subprocess.Popen | None = None
    uac_ok: int = 0             # calls the callers completed
    calls: int = 0              # calls both ends completed
    cpu_stat: float = 0.0       # seconds, /proc/PID/stat
    idle_cpu: tuple = (0.0, 0.0)  # seconds per second without calls (stat, schedstat)
    cpu_exact: float = 0.0      # seconds, schedstat
    commands: int = 0
    reads: int = 0

    def per_call(self, value, scale=1.0):
        return value * scale / self.calls if self.calls else float("nan")


def warm_up(t, procs, work):
    """Start the callee, register it, and place WARMUP unmeasured calls (Redis connections,
    Python imports, caches)."""
    print(f"{t.name}: {WARMUP} warm-up calls", flush=True)
    uas_port = free_port()
    t.uas = sipp(procs, work, f"{t.name}-uas", "uas.xml", "-p", uas_port, "-s", t.callee,
                 "-m", WARMUP + ROUNDS * (CALLS // ROUNDS))
    time.sleep(0.3)     # SIPp binds its port
    register(t.port, TENANT, t.callee, uas_port)
    ok = caller_load(procs, work, f"{t.name}-warmup", t, WARMUP)
    if ok != WARMUP:
        raise RuntimeError(f"{t.name}: warm-up calls failed ({ok} of {WARMUP} ok); see {work}")


IDLE_S = 3.0


def idle_rates(targets, r):
    """What runs without calls, per second: each Kamailio's CPU (timers; vpbx's feature-code
    timer claims due digit timeouts from Redis every 100 ms) and Redis's commands and reads.
    measure() subtracts it, so that the figures are per call, not per second of the round."""
    before = [kamailio_cpu(t.pgid) for t in targets], redis_counters(r)
    time.sleep(IDLE_S)
    after = [kamailio_cpu(t.pgid) for t in targets], redis_counters(r)
    for t, (s0, e0), (s1, e1) in zip(targets, before[0], after[0]):
        t.idle_cpu = ((s1 - s0) / IDLE_S, (e1 - e0) / IDLE_S)
    return ((after[1][0] - before[1][0]) / IDLE_S, (after[1][1] - before[1][1] - 1) / IDLE_S)


def measure(t, procs, work, r, round_no, idle):
    """One round of CALLS // ROUNDS calls through t; adds what they cost to t, less what
    runs without calls (idle_rates). Only t carries load meanwhile."""
    print(f"{t.name}: round {round_no + 1}/{ROUNDS}, {CALLS // ROUNDS} calls at {RATE}/s", flush=True)
    start, cpu0, (cmd0, reads0) = time.monotonic(), kamailio_cpu(t.pgid), redis_counters(r)
    ok = caller_load(procs, work, f"{t.name}-uac{round_no}", t, CALLS // ROUNDS)
    time.sleep(1)       # late retransmissions and replies
    cpu1, (cmd1, reads1) = kamailio_cpu(t.pgid), redis_counters(r)
    seconds = time.monotonic() - start
    t.uac_ok += ok
    t.cpu_stat += cpu1[0] - cpu0[0] - t.idle_cpu[0] * seconds
    t.cpu_exact += cpu1[1] - cpu0[1] - t.idle_cpu[1] * seconds
    t.commands += cmd1 - cmd0 - idle[0] * seconds
    t.reads += reads1 - reads0 - 1 - idle[1] * seconds     # - 1: the second INFO's own read


def finish(t, work):
    wait(t.uas, 15)
    # A call counts as completed only when both ends completed it.
    t.calls = min(t.uac_ok, sipp_successes(work, f"{t.name}-uas") - WARMUP)


# ---- feature-code latency ------------------------------------------------------

CODES = int(os.environ.get("BENCH_CODES", "60"))
ONLY = os.environ.get("BENCH_ONLY", "")      # "codes": only the feature-code latency
CODE_TARGET = "199"         # an extension no longer one starts with: *199 completes on its 9


def code_latency(procs, work, cfg, store, r):
    """Seconds from the last digit of a code reaching the proxy to the completed-code event on
    the PBX event stream, for CODES codes typed in one call (no timeout waits: each code
    completes on its last digit). The digits are sent as rtpengine reports them (the JSON
    datagrams of --dtmf-log-dest) to the proxy's DTMF socket, paced under the flood limit."""
    print(f"vpbx: {CODES} feature codes in one call", flush=True)
    store.setting_set(TENANT, "pbx_transfer", "on")
    store.ext_add(TENANT, CODE_TARGET)
    callee = CALLEES["vpbx"]
    uas_port = free_port()
    uas = sipp(procs, work, "codes-uas", "uas.xml", "-p", uas_port, "-s", callee, "-m", 1)
    time.sleep(0.3)
    register(cfg.sip_port, TENANT, callee, uas_port)
    hold_ms = int(CODES * 0.5 * 1000) + 3000
    uac = sipp(procs, work, "codes-uac", "uac.xml", "-p", free_port(), "-s", callee,
               "-set", "from", CALLER, "-set", "domain", TENANT, "-m", 1, "-d", hold_ms,
               f"127.0.0.1:{cfg.sip_port}")
    deadline = time.monotonic() + 10
    while not (keys := list(r.scan_iter(match="vpbx:call:*"))):
        if time.monotonic() > deadline:
            raise RuntimeError("the call for the feature codes was not answered")
        time.sleep(0.05)
    record = r.hgetall(keys[0])
    callid, tag = keys[0].split("{", 1)[1].rstrip("}"), record["rtp_caller"]
    last = r.xrevrange("vpbx:events", count=1)
    last_id = last[0][0] if last else "0"
    latencies = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for _ in range(CODES):
            started = time.monotonic()
            for i, key in enumerate("*" + CODE_TARGET):
                report = {"callid": callid, "source_tag": tag, "type": "DTMF", "duration": 100,
                          "event": "0123456789*#".index(key)}
                sent = time.monotonic()
                sock.sendto(json.dumps(report).encode(), ("127.0.0.1", cfg.dtmf_port))
                if i < len(CODE_TARGET):
                    time.sleep(0.06)
            events = r.xread({"vpbx:events": last_id}, count=1, block=2000)
            if not events:
                raise RuntimeError("a feature code produced no event")
            latencies.append(time.monotonic() - sent)
            last_id = events[0][1][0][0]
            time.sleep(max(0.0, 0.5 - (time.monotonic() - started)))     # < 10 digits/s
    wait(uac, hold_ms / 1000 + 15)
    wait(uas, 15)
    return sorted(latencies)


def start_native(procs, work, cfg, port):
    """A Kamailio running bench/native.cfg on `port`, using the stack's Redis and rtpengine."""
    run, redis = work / "native", urllib.parse.urlparse(cfg.redis_url)
    run.mkdir()
    proc = procs.start([
        "kamailio", "-f", BENCH / "native.cfg", "-DD", "-E", "-Y", run, "-m", "128", "-M", "16",
        "-l", f"udp:127.0.0.1:{port}", "-l", f"tcp:127.0.0.1:{port}",
        "-A", f'CTL_SOCK="unix:{run / "ctl"}"', "-A", f'RPC_SOCK="{run / "rpc.sock"}"',
        "-A", f'RTPE_SOCK="udp:{cfg.rtpe}"', "-A", f"CHILDREN={CHILDREN}",
        "-A", f'REDIS_SRV="name=vpbx;addr={redis.hostname};port={redis.port}"',
    ], work / "native.log", run)
    probe = dataclasses.replace(cfg, sip_port=port)
    deadline = time.monotonic() + 20
    while True:
        try:
            if stack.sip_options(probe, "udp"):
                return proc
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"native Kamailio did not start; see {work / 'native.log'}")
        time.sleep(0.1)


# ---- report ----------------------------------------------------------------

def report(targets, leftovers, latencies=()):
    print()
    print(f"{'config':8} {'calls':>6} {'failed':>6} {'CPU µs/call':>12} {'(schedstat)':>11} "
          f"{'Redis cmds/call':>15} {'Redis round trips/call':>22}")
    for t in targets:
        print(f"{t.name:8} {t.calls:6d} {ROUNDS * (CALLS // ROUNDS) - t.calls:6d} "
              f"{t.per_call(t.cpu_stat, 1e6):12.0f} {t.per_call(t.cpu_exact, 1e6):11.0f} "
              f"{t.per_call(t.commands):15.2f} {t.per_call(t.reads):22.2f}")
    if len(targets) == 2 and all(t.calls for t in targets):
        vpbx, native = targets
        print(f"ratio vpbx/native CPU: {vpbx.per_call(vpbx.cpu_stat) / native.per_call(native.cpu_stat):.2f}"
              f" (schedstat: {vpbx.per_call(vpbx.cpu_exact) / native.per_call(native.cpu_exact):.2f})")
    if latencies:
        def pct(p):
            return latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))] * 1000
        print(f"feature code, last digit -> event: p50 {pct(50):.2f} ms, p99 {pct(99):.2f} ms "
              f"({len(latencies)} codes; goal p99 <= 5 ms)")
    if leftovers:
        print(f"LEFT OVER after the load: {leftovers}")
    print(GOAL)


def main():
    work = Path(tempfile.mkdtemp(prefix="vpbx-bench-"))
    # The proxy's Redis work alone: rtpengine's session writes would count in the same INFO
    # (bench/session_store.py measures those).
    cfg = private_config(work, RTP_PORTS, CHILDREN, {"VPBX_RTPE_REDIS_DB": "off"})
    procs = Processes()
    # SIGTERM (e.g. from a CI timeout) unwinds like Ctrl-C, through the cleanup below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    targets, leftovers, ok, latencies = [], "", False, []
    try:
        stack.up(cfg, say=lambda _: None)
        r = cfg.redis()         # a fresh Redis: nothing to clean
        store = ProvisioningStore(r)
        store.tenant_add(TENANT)
        for ext in (CALLER, *CALLEES.values()):
            store.ext_add(TENANT, ext)
        # One source places every call, at RATE a second: above the default INVITE rate
        # limit of a source. Raised, not switched off, so that the counting is measured.
        store.limit_set("invite", str(max(RATE * 4, 1000)))
        if ONLY != "codes":
            native_port = free_port()
            native = start_native(procs, work, cfg, native_port)
            targets = [Target("vpbx", cfg.sip_port, CALLEES["vpbx"],
                              stack.running(cfg)["kamailio"]),
                       Target("native", native_port, CALLEES["native"], native.pid)]
            for t in targets:
                warm_up(t, procs, work)
            time.sleep(1)
            idle = idle_rates(targets, r)
            # Rounds alternate between the two, so that a change in what else the machine runs
            # meanwhile (2 cores) weighs on both alike.
            for round_no in range(ROUNDS):
                for t in targets:
                    measure(t, procs, work, r, round_no, idle)
            for t in targets:
                finish(t, work)
        latencies = code_latency(procs, work, cfg, store, r)
        kw = r.connection_pool.connection_kwargs
        transitions.report(kw.get("host", "127.0.0.1"), kw.get("port", 6379))
        left = {"rtpengine calls": len(cfg.ng().calls()),
                "vpbx call records": len(list(r.scan_iter(match="vpbx:call:*", count=1000))),
                "native call records": len(list(r.scan_iter(match="bench:call:*", count=1000)))}
        leftovers = ", ".join(f"{v} {k}" for k, v in left.items() if v)
        ok = not leftovers and all(t.calls == ROUNDS * (CALLS // ROUNDS) for t in targets)
        ok = ok and (ONLY == "codes" or len(targets) == 2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        procs.stop_all()
        stack.down(cfg, say=lambda _: None)
        if ok and not os.environ.get("BENCH_KEEP"):
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"logs and SIPp files kept in {work}")
    report(targets, leftovers, latencies)
    if not ok:
        print("FAILED: some calls failed or left state behind; the figures above do not count",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
