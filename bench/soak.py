#!/usr/bin/python3
"""`make soak`: a bounded soak of a private vpbx stack with SIPp parties: basic calls and the
three transfer kinds (blind, attended, *1 return) at a steady rate, one Redis restart and one
rtpengine restart in the middle, then the checks: no failed call, nothing leaked (Redis call
keys, rtpengine calls, tm transactions), Kamailio and rtpengine memory growth under a bound.
See docs/benchmarks.md ("Soak") for what is counted and how.

Environment: SOAK_CALLS (default 10000, of which SOAK_TRANSFERS of each transfer kind,
default a tenth each), SOAK_RATE (calls/s, default 20), SOAK_MEM_MB (growth bound, default
20), SOAK_RTP_PORTS (default 19000-19999), SOAK_KEEP=1 keeps the work directory.
tests/integration/test_soak.py runs the same code with a few hundred calls.
"""
import dataclasses
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path[:0] = [str(ROOT / "kemi"), str(ROOT / "tests"), str(ROOT / "tests" / "integration")]

import redis  # noqa: E402
from info_requests import GAP, INFO, RELAY, info_body  # noqa: E402  (tests/integration)
from harness import PARTIES, tm_current  # noqa: E402
from ports import free_port  # noqa: E402
from sipload import (Processes, private_config, quit_sipp, register, sipp,  # noqa: E402
                     sipp_stats, wait)
from vpbx.adapters.redis.provisioning_store import ProvisioningStore  # noqa: E402
from vpbx.adapters.redis.store import DUE, EVENTS  # noqa: E402
from vpbx.tooling import stack  # noqa: E402

TENANT = "soak.test"
CHILDREN = 4
OUTAGE_GRACE_S = 3.0    # after `up`, until every worker has found Redis back (circuit breaker)
RECV_TIMEOUT_MS = 30000
# After the last call, how long the state may take to go: a transaction waits up to tm's
# fr_inv_timer (60 s) for a final answer that a party broken by a restart never sends.
DRAIN_S = 75
NOTHING = {"redis": [], "rtpengine": [], "tm": 0}


@dataclasses.dataclass(frozen=True)
class Kind:
    """One kind of call: A (caller ext) calls C (callee ext), types `code` once answered,
    stays hold_ms and hangs up. With a transfer target B (target ext), the transfer must end
    with the event `final` on the PBX event stream."""
    name: str
    caller: str
    callee: str
    code: str = ""
    gap_ms: int = 150
    hold_ms: int = 2000
    target: str = ""
    target_party: str = ""      # "ringing": rings until cancelled; else "RING_MS,HOLD_MS"
    final: str = ""
    tail_ms: int = 0            # how long the call goes on after A has left (B and C talking)


KINDS = (
    Kind("basic", "201", "301"),
    # A hangs up at once while B rings; B answers, talks with C, hangs up: C gets the BYE.
    Kind("blind", "202", "302", "*100", hold_ms=300, target="100", target_party="1500,1500",
         final="completed", tail_ms=3500),
    # B answers, A talks with B, hangs up: B and C talk, B hangs up: C gets the BYE.
    Kind("attended", "203", "303", "*101", hold_ms=1500, target="101", target_party="200,3000",
         final="completed", tail_ms=2000),
    # B rings; A types *1: B is cancelled, A and C talk again, A hangs up.
    Kind("return", "204", "304", "*102*1", gap_ms=300, hold_ms=1000, target="102",
         target_party="ringing", final="returned"),
)


@dataclasses.dataclass
class Plan:
    calls: int
    rate: float
    transfers: int              # calls of each transfer kind, within `calls`
    mem_bound_mb: float = 20.0
    warmup: int = 5             # calls of each kind before the first memory sample

    def counts(self):
        return {k.name: (self.calls - 3 * self.transfers if k.name == "basic" else self.transfers)
                for k in KINDS}


@dataclasses.dataclass
class Outage:
    daemon: str
    killed: float = 0.0         # epoch seconds
    back: float = 0.0           # `up` returned
    signal: str = ""

    def covers(self, t):
        return self.killed - 0.5 <= t <= self.back + OUTAGE_GRACE_S


# ---- memory ----------------------------------------------------------------

def memory_kb(pgid):
    """(sum of RssAnon, largest RssShmem) over a process group, kB: each process's private
    memory (pkg memory, Python heaps), and the shared memory segment as far as touched
    (counted once: every Kamailio process maps the same segment)."""
    anon, shmem = 0, 0
    for pid, _ in stack.group_pids(pgid):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        fields = dict(re.findall(r"^(\w+):\s+(\d+) kB", status, re.M))
        anon += int(fields.get("RssAnon", 0))
        shmem = max(shmem, int(fields.get("RssShmem", 0)))
    return anon, shmem


def memory(cfg):
    """{daemon: kB} for Kamailio (private + shared) and rtpengine."""
    groups = stack.running(cfg)
    out = {}
    for name in ("kamailio", "rtpengine"):
        if name in groups:
            anon, shmem = memory_kb(groups[name])
            out[name] = anon + shmem
    return out


# ---- parties -----------------------------------------------------------------

def caller_xml(work, kind):
    presses = "".join(GAP.format(gap=kind.gap_ms).join(
        INFO.format(n=n, cseq=10 + n, ctype=RELAY, body=info_body(RELAY, key), expect=200)
        for n, key in enumerate(kind.code)))
    path = work / f"caller-{kind.name}.xml"
    text = (BENCH / "soak_caller.xml").read_text()
    path.write_text(text.replace("<!-- INFO -->\n", presses).replace("HOLD_MS", str(kind.hold_ms)))
    return path


def target_xml(work, kind):
    ring, hold = kind.target_party.split(",")
    path = work / f"target-{kind.name}.xml"
    text = (PARTIES / "target.xml").read_text()
    path.write_text(text.replace("RING_MS", ring).replace("HOLD_MS", hold)
                    .replace("<!-- REINVITE -->\n", ""))
    return path


class Parties:
    """The SIPp callees (C of each kind, B of each transfer kind), registered, running until
    `finish`."""

    def __init__(self, procs, work, cfg):
        self.procs, self.work, self.cfg = procs, work, cfg
        self.running = {}       # name -> (proc, control port)

    def start(self, name, ext, scenario, *args):
        port, control = free_port(), free_port()
        proc = sipp(self.procs, self.work, name, scenario, "-p", port, "-recv_timeout",
                    RECV_TIMEOUT_MS, "-trace_logs", "-log_file", self.work / f"{name}.logs",
                    *args, control_port=control)
        self.running[name] = (proc, control)
        time.sleep(0.2)         # SIPp binds its port
        register(self.cfg.sip_port, TENANT, ext, port)

    def start_all(self):
        for kind in KINDS:
            self.start(f"C-{kind.name}", kind.callee, "uas.xml")
            if kind.target_party == "ringing":
                self.start(f"B-{kind.name}", kind.target, PARTIES / "callee_ringing.xml",
                           "-set", "user", kind.target)
            elif kind.target:
                self.start(f"B-{kind.name}", kind.target, target_xml(self.work, kind),
                           "-set", "user", kind.target, "-set", "rtp_port", free_port(),
                           "-set", "outdir", self.work, "-set", "party", f"B-{kind.name}")

    def finish(self, timeout):
        for _, control in self.running.values():
            quit_sipp(control)
        for proc, _ in self.running.values():
            wait(proc, timeout)
        return {name: sipp_stats(self.work, name) for name in self.running}


def place(procs, work, cfg, kind, calls, rate, tag):
    """A SIPp placing `calls` calls of `kind` at `rate` a second; per-call log in
    WORK/A-kind-tag.logs."""
    name = f"A-{kind.name}-{tag}"
    return name, sipp(procs, work, name, caller_xml(work, kind), "-p", free_port(),
                      "-set", "from_user", kind.caller, "-set", "from_domain", TENANT,
                      "-set", "to_user", kind.callee, "-m", calls,
                      "-r", max(1, round(rate * 100)), "-rp", "100s", "-l", 2000,
                      "-recv_timeout", RECV_TIMEOUT_MS, "-trace_logs",
                      "-log_file", work / f"{name}.logs", f"127.0.0.1:{cfg.sip_port}")


def call_log(path):
    """{Call-ID: {"placed": t, "ok": t, "refused": t}} from a soak caller's log actions."""
    calls: dict[str, dict[str, float]] = {}
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return calls
    for line in lines:
        parts = line.split()
        if len(parts) >= 3 and parts[0] in ("placed", "ok", "refused"):
            calls.setdefault(parts[1], {})[parts[0]] = float(parts[-1])
    return calls


def failed_callids(work, name):
    """(time, Call-ID) of the calls a SIPp party aborted, from its error file."""
    try:
        text = (work / f"{name}.err").read_text(errors="replace")
    except OSError:
        return []
    found = []
    entries = re.split(r"\d{4}-\d\d-\d\d\t[\d:.]+\t(\d+\.\d+): ", text)
    for at, entry in zip(entries[1::2], entries[2::2]):
        match = re.search(r"(?:Call-Id '|for call: |Call-Id: )([^'\s,]+)", entry)
        if match and re.search("aborting call", entry, re.I):
            # A transfer target's leg: the proxy's Call-ID is vpbx-legN-<the A call's>.
            found.append((float(at), re.sub(r"^vpbx-leg\d+-", "", match.group(1))))
    return found


# ---- the PBX event stream ------------------------------------------------------

class Events(threading.Thread):
    """Reads the PBX event stream while the soak runs (it is capped; the soak makes more
    events than it keeps): {A's Call-ID: [transfer event kinds]}. Survives the Redis restart."""

    def __init__(self, cfg):
        super().__init__(daemon=True)
        self.cfg = cfg
        self.by_call: dict[str, list[str]] = {}
        self.stopping = threading.Event()
        self.last = "$"

    def run(self):
        r = None
        while not self.stopping.is_set():
            try:
                r = r or self.cfg.redis()
                if self.last == "$":
                    newest = r.xrevrange(EVENTS, count=1)
                    self.last = newest[0][0] if newest else "0"
                for _, entries in r.xread({EVENTS: self.last}, count=1000, block=500) or []:
                    for event_id, event in entries:
                        self.last = event_id
                        if event.get("type") == "transfer":
                            self.by_call.setdefault(event.get("callid", ""), []).append(event["kind"])
            except (redis.RedisError, OSError):
                r = None
                time.sleep(0.2)

    def stop(self):
        self.stopping.set()
        self.join(5)


# ---- restarts --------------------------------------------------------------------

def restart(cfg, outage, sig):
    """Kill one daemon of the stack (its whole process group) and `up` it again."""
    pgid = stack.running(cfg)[outage.daemon]
    outage.signal = signal.Signals(sig).name
    outage.killed = time.time()
    os.killpg(pgid, sig)
    while any(stack.group_pids(pgid)):
        time.sleep(0.02)
    try:
        os.waitpid(pgid, 0)         # stack.up started it in this process: reap it
    except ChildProcessError:
        pass
    stack.up(cfg, say=lambda _: None)
    outage.back = time.time()


# ---- leaks -----------------------------------------------------------------------

def leaks(cfg):
    """What calls left behind: Redis call keys (records, typing state, pending digit
    timeouts), rtpengine calls, tm transactions (as tests/integration/conftest.py checks)."""
    r = cfg.redis()
    keys = ProvisioningStore(r).call_keys() + sorted(r.scan_iter("vpbx:dtmf:{*"))
    keys += r.zrange(DUE, 0, -1)
    return {"redis": keys, "rtpengine": cfg.ng().calls(), "tm": tm_current(cfg)}


def settled(left, kept):
    """Nothing left but records of calls in `kept` (in progress at the Redis restart)."""
    return (not left["rtpengine"] and not left["tm"]
            and all(callid_of(key) in kept for key in left["redis"]))


def callid_of(key):
    match = re.search(r"\{([^}]*)\}", key)
    return match.group(1) if match else key.split()[0]


# ---- the soak ----------------------------------------------------------------------

@dataclasses.dataclass
class Figures:
    plan: Plan
    seconds: float = 0.0
    drain_s: float = 0.0        # after the parties had finished, until nothing was left
    by_kind: dict = dataclasses.field(default_factory=dict)     # kind -> Counter
    outages: list = dataclasses.field(default_factory=list)
    in_progress: dict = dataclasses.field(default_factory=dict)  # daemon -> Counter of fates
    parties: dict = dataclasses.field(default_factory=dict)     # party -> (ok, failed, of them at restarts)
    left: dict = dataclasses.field(default_factory=dict)
    left_accounted: list = dataclasses.field(default_factory=list)
    memory: dict = dataclasses.field(default_factory=dict)      # sample -> {daemon: kB}
    problems: list = dataclasses.field(default_factory=list)

    @property
    def failed(self):
        return sum(c["failed"] for c in self.by_kind.values()) + sum(
            f - at for _, f, at in self.parties.values())


def provision(cfg, rate):
    store = ProvisioningStore(cfg.redis())
    store.tenant_add(TENANT)
    store.setting_set(TENANT, "pbx_transfer", "on")
    # The soak's transfers a minute, with room: over the default cap of the tenant's.
    store.setting_set(TENANT, "transfer_max_per_minute", str(min(10000, max(1000, int(rate * 60)))))
    for kind in KINDS:
        for ext in (kind.caller, kind.callee, kind.target):
            if ext:
                store.ext_add(TENANT, ext)
    # Every caller is 127.0.0.1: above the default INVITE rate limit of one source.
    store.limit_set("invite", str(max(int(rate * 10), 1000)))


def soak(cfg, work, plan, say=print):
    """Run the plan against the stack `cfg` (running); -> Figures. Restarts Redis (SIGTERM)
    and rtpengine (SIGKILL) once each, at a third and two thirds of the run."""
    fig = Figures(plan)
    procs = Processes()
    events = Events(cfg)
    try:
        provision(cfg, plan.rate)
        parties = Parties(procs, work, cfg)
        parties.start_all()
        events.start()
        say(f"warm-up: {plan.warmup} calls of each kind")
        warm = [place(procs, work, cfg, k, plan.warmup, 2, "warmup") for k in KINDS]
        for _, proc in warm:
            wait(proc, 60)
        fig.memory["start"] = memory(cfg)
        counts = plan.counts()
        duration = plan.calls / plan.rate
        say(f"soak: {plan.calls} calls at {plan.rate:g}/s ({counts}), about {duration:.0f} s")
        start = time.time()
        load = [(k, *place(procs, work, cfg, k, counts[k.name], plan.rate * counts[k.name] / plan.calls,
                           "soak")) for k in KINDS if counts[k.name]]
        fig.outages = [Outage("redis"), Outage("rtpengine")]
        for outage, at, sig in ((fig.outages[0], 1 / 3, signal.SIGTERM),
                                (fig.outages[1], 2 / 3, signal.SIGKILL)):
            time.sleep(max(0.0, start + duration * at - time.time()))
            fig.memory[f"before the {outage.daemon} restart"] = memory(cfg)
            restart(cfg, outage, sig)
            say(f"{outage.daemon}: {outage.signal}, up again after {outage.back - outage.killed:.2f} s")
        for _, _, proc in load:
            wait(proc, max(60.0, start + duration * 1.5 + 60 - time.time()))
        fig.seconds = time.time() - start
        stats = parties.finish(RECV_TIMEOUT_MS / 1000 + 10)
        events.stop()
        drained = time.monotonic()
        at_redis = in_progress_at(work, load, fig.outages[0])
        while not settled(left := leaks(cfg), at_redis) and time.monotonic() < drained + DRAIN_S:
            time.sleep(0.5)
        fig.drain_s = time.monotonic() - drained
        fig.memory["end"] = memory(cfg)
        account(fig, work, load, stats, events, left)
    finally:
        events.stopping.set()
        procs.stop_all()
    return fig


def ended_at(kind, seen):
    """When the call was over: A's end (and the time B and C talk on after a transfer), its
    503, or when A's SIPp gave up on it."""
    if "ok" in seen:
        return seen["ok"] + kind.tail_ms / 1000 + 1.0
    return seen.get("refused", seen.get("aborted", float("inf")))


def caller_calls(work, name):
    """A's calls (call_log), with the time A's SIPp aborted a call ("aborted")."""
    calls = call_log(work / f"{name}.logs")
    for at, callid in failed_callids(work, name):
        if callid in calls:
            calls[callid].setdefault("aborted", at)
    return calls


def in_progress_at(work, load, outage):
    """Call-IDs of the calls placed before the restart and not over when it came."""
    return {callid for kind, name, _ in load
            for callid, seen in caller_calls(work, name).items()
            if seen["placed"] < outage.killed < ended_at(kind, seen)}


def account(fig, work, load, stats, events, left):
    """Each call of the soak: ok, refused during an outage, in progress at a restart or placed
    during an outage (and what became of it), or failed; the parties' failures; what was
    left, and whether accounted."""
    restarts = {o.daemon: o for o in fig.outages}
    in_progress: dict[str, set[str]] = {name: set() for name in restarts}
    fates: dict[str, Counter[str]] = {name: Counter() for name in restarts}
    aborted = {name: failed_callids(work, name) for name in stats}
    broken = {callid for found in aborted.values() for _, callid in found}
    for kind, name, _ in load:
        c: Counter[str] = Counter()
        calls = caller_calls(work, name)
        for callid, seen in calls.items():
            placed, ended = seen["placed"], ended_at(kind, seen)
            c["placed"] += 1
            at = [d for d, o in restarts.items() if placed < o.killed < ended]
            transfer = events.by_call.get(callid, [])
            done = "ok" in seen and (not kind.final or kind.final in transfer)
            fate = f"{kind.name}: " + (
                "completed" if done else "answered, transfer not completed"
                if "ok" in seen else "refused" if "refused" in seen else "failed") + (
                ", C or B aborted" if callid in broken else "")
            outage = next((o for o in fig.outages if o.covers(placed)), None)
            if at:
                for daemon in at:
                    in_progress[daemon].add(callid)
                    fates[daemon][fate] += 1
                c["in progress at a restart"] += 1
            elif "refused" in seen:
                c[f"refused during the {outage.daemon} outage" if outage else "failed"] += 1
                if not outage:
                    fig.problems.append(f"{callid}: refused outside an outage")
            elif done:
                c["completed"] += 1
            elif outage:
                # Let through while the daemon was down or the workers not yet back: no clear
                # answer, but the outage's doing; reported with the restart's calls.
                in_progress[outage.daemon].add(callid)
                fates[outage.daemon][f"placed during the outage, not refused: {fate}"] += 1
                c[f"placed during the {outage.daemon} outage, not refused, not completed"] += 1
            else:
                c["failed"] += 1
                fig.problems.append(f"{kind.name} {callid}: {seen}, transfer events {transfer}")
        c["transfers " + (kind.final or "-")] = sum(
            1 for callid in calls if kind.final and kind.final in events.by_call.get(callid, []))
        fig.by_kind[kind.name] = c
    fig.in_progress = fates
    everyone = set().union(*in_progress.values())
    windows = [(o.killed, o.back + RECV_TIMEOUT_MS / 1000 + 10) for o in fig.outages]
    for name, s in stats.items():
        at_restart = sum(1 for t, callid in aborted[name]
                 if callid in everyone or any(a <= t <= b for a, b in windows))
        failed = s.get("FailedCall(C)", 0)
        fig.parties[name] = (s.get("SuccessfulCall(C)", 0), failed, min(at_restart, failed))
    # A record the dump kept of a call whose BYE came while Redis was down stays until its
    # TTL: accounted when the call was in progress at the Redis restart.
    fig.left = {"rtpengine": left["rtpengine"], "tm": left["tm"], "redis": []}
    for key in left["redis"]:
        (fig.left_accounted if callid_of(key) in in_progress["redis"] else fig.left["redis"]).append(key)


def leaked(fig):
    return {k: v for k, v in fig.left.items() if v}


def memory_growth(fig):
    """{daemon: growth kB} start -> end; rtpengine's is its new process's, from its first
    sample after the restart ("end") against the old one's start (a bound on both)."""
    start, end = fig.memory.get("start", {}), fig.memory.get("end", {})
    return {d: end[d] - start[d] for d in start if d in end}


def report(fig, say=print):
    plan = fig.plan
    say("")
    say(f"soak: {plan.calls} calls planned at {plan.rate:g}/s; load took {fig.seconds:.0f} s "
        f"({plan.calls / fig.seconds if fig.seconds else 0:.1f} calls/s achieved)")
    for kind, c in fig.by_kind.items():
        say(f"  {kind:9} " + ", ".join(f"{k} {v}" for k, v in c.items()))
    for o in fig.outages:
        fates = sorted(fig.in_progress.get(o.daemon, {}).items())
        say(f"  {o.daemon} restart ({o.signal}): down {o.back - o.killed:.2f} s; "
            f"calls in progress then: {sum(n for _, n in fates)}")
        for fate, n in fates:
            say(f"      {n:4d}  {fate}")
    for name, (ok, failed, at) in sorted(fig.parties.items()):
        say(f"  party {name:11} ok {ok}, failed {failed} (of them at a restart: {at})")
    left = leaked(fig)
    say(f"  left at the end: {left or 'nothing'}; records of calls in progress at the Redis "
        f"restart, kept until their TTL: {len(fig.left_accounted)}")
    for sample, mem in fig.memory.items():
        say(f"  memory {sample:28} " + ", ".join(f"{d} {kb / 1024:.1f} MB" for d, kb in mem.items()))
    growth = memory_growth(fig)
    say("  memory growth start -> end: " + ", ".join(f"{d} {kb / 1024:+.1f} MB" for d, kb in growth.items())
        + f" (bound {plan.mem_bound_mb:g} MB)")
    say(f"  state drained {fig.drain_s:.1f} s after the parties had finished")
    say(f"  failed calls: {fig.failed}")
    for problem in fig.problems[:20]:
        say(f"    {problem}")


def passed(fig):
    growth = memory_growth(fig)
    counts = fig.plan.counts()
    placed = all(fig.by_kind.get(k, {}).get("placed") == n for k, n in counts.items() if n)
    return (placed and fig.failed == 0 and not leaked(fig) and len(growth) == 2
            and all(kb <= fig.plan.mem_bound_mb * 1024 for kb in growth.values()))


def main():
    calls = int(os.environ.get("SOAK_CALLS", "10000"))
    plan = Plan(calls=calls, rate=float(os.environ.get("SOAK_RATE", "20")),
                transfers=int(os.environ.get("SOAK_TRANSFERS", str(calls // 10))),
                mem_bound_mb=float(os.environ.get("SOAK_MEM_MB", "20")))
    work = Path(tempfile.mkdtemp(prefix="vpbx-soak-"))
    cfg = private_config(work, os.environ.get("SOAK_RTP_PORTS", "19000-19999"), CHILDREN)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    ok = False
    try:
        stack.up(cfg, say=lambda _: None)
        fig = soak(cfg, work, plan)
        report(fig)
        ok = passed(fig)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        stack.down(cfg, say=lambda _: None)
        if ok and not os.environ.get("SOAK_KEEP"):
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"logs and SIPp files kept in {work}")
    print("PASSED" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
