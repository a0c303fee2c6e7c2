#!/usr/bin/python3
"""What rtpengine's Redis session store (VPBX_RTPE_REDIS_DB) costs, measured on the ng
protocol: a private Redis and rtpengine (the stack's command lines), each round N calls of
offer -> answer -> delete, rounds alternating between rtpengine without and with the store.
Then the store with Redis hung (SIGSTOP): how long commands take.

About 20 s. Environment: STORE_CALLS (per round, default 300), STORE_RTP_PORTS (default
32000-32999, the bench's range). docs/benchmarks.md records a run.
"""
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "kemi"), str(ROOT / "tests")]

from vpbx.tooling import stack     # noqa: E402  (needs the sys.path entry above)
from ports import free_port       # noqa: E402

CALLS = int(os.environ.get("STORE_CALLS", "300"))
ROUNDS = 2
FLAGS = ["trust address", "port latching"]


def sdp(port):
    return (f"v=0\r\no=- {port} 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
            f"m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")


def call(ng):
    """One call's ng commands -> their durations in ms (offer, answer, delete)."""
    callid, took = uuid.uuid4().hex, []
    for name, args in (("offer", {"from_tag": "a", "sdp": sdp(40000)}),
                       ("answer", {"from_tag": "a", "to_tag": "b", "sdp": sdp(40002)}),
                       ("delete", {})):
        start = time.monotonic()
        ng.command(name, call_id=callid, flags=FLAGS, **args)
        took.append((time.monotonic() - start) * 1000)
    return took


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(p / 100 * len(values)))]


def redis_counts(r):
    info = r.info("all")
    commands = {k[8:]: v["calls"] for k, v in info.items()
                if k.startswith("cmdstat_") and k not in ("cmdstat_info", "cmdstat_config")}
    return commands, info["total_reads_processed"]


class Rtpengine:
    def __init__(self, cfg):
        self.cfg = cfg
        [(_, self.argv, _, _)] = [d for d in stack.daemons(cfg) if d[0] == "rtpengine"]
        self.proc = None

    def start(self):
        stack.write_rtpengine_conf(self.cfg)
        with open(self.cfg.var / "log" / "rtpengine.log", "ab") as log:
            self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 10
        while not stack._ready(self.cfg.ng().ping):
            if time.monotonic() > deadline:
                raise RuntimeError("rtpengine did not start")
            time.sleep(0.1)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            stack.stop_group(self.proc.pid)
            self.proc.wait()


def main():
    work = Path(tempfile.mkdtemp(prefix="vpbx-store-"))
    base = {"VPBX_VAR": str(work), "VPBX_REDIS_PORT": str(free_port()),
            "VPBX_RTPE_PORT": str(free_port()),
            "VPBX_RTP_PORTS": os.environ.get("STORE_RTP_PORTS", "32000-32999")}
    configs = {"without": stack.Config.from_env({**base, "VPBX_RTPE_REDIS_DB": "off"}),
               "with": stack.Config.from_env(base)}
    cfg = configs["with"]
    stack._dirs(cfg)
    [(_, redis_argv, _, _)] = [d for d in stack.daemons(cfg) if d[0] == "redis"]
    redis_proc = subprocess.Popen(redis_argv, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, start_new_session=True, cwd=work)
    engines = {name: Rtpengine(c) for name, c in configs.items()}
    took: dict[str, list[list[float]]] = {name: [] for name in configs}
    try:
        r = cfg.redis()
        while not stack._ready(r.ping):
            time.sleep(0.05)
        per_call = {}
        for _ in range(ROUNDS):
            for name, engine in engines.items():
                engine.start()
                try:
                    ng = cfg.ng()
                    for _ in range(20):             # warm-up: Redis connection, first calls
                        call(ng)
                    before = redis_counts(r)
                    took[name] += [call(ng) for _ in range(CALLS)]
                    after = redis_counts(r)
                finally:
                    engine.stop()
                if name == "with":
                    per_call = {k: (v - before[0].get(k, 0)) / CALLS for k, v in after[0].items()
                                if v != before[0].get(k, 0)}
                    reads = (after[1] - before[1] - 1) / CALLS      # -1: the INFO itself
        print(f"{'':8} {'offer p50/p99 ms':>17} {'answer':>14} {'delete':>14}   ({ROUNDS * CALLS} calls)")
        for name, rows in took.items():
            cells = [f"{pct([t[i] for t in rows], 50):6.2f}/{pct([t[i] for t in rows], 99):6.2f}"
                     for i in range(3)]
            print(f"{name:8} {cells[0]:>17} {cells[1]:>14} {cells[2]:>14}")
        print("Redis per call with the store: "
              + ", ".join(f"{k} {v:.2f}" for k, v in sorted(per_call.items()))
              + f"; round trips {reads:.2f}")
        engines["with"].start()
        ng = cfg.ng()
        callid = uuid.uuid4().hex
        ng.command("offer", call_id=callid, from_tag="a", sdp=sdp(40000), flags=FLAGS)
        ng.command("answer", call_id=callid, from_tag="a", to_tag="b", sdp=sdp(40002), flags=FLAGS)
        print(f"one call's session: {cfg.rtpe_redis().strlen(callid)} bytes of JSON")
        ng.command("delete", call_id=callid)
        hung(ng, redis_proc.pid)
    finally:
        for engine in engines.values():
            engine.stop()
        stack.stop_group(redis_proc.pid)
        redis_proc.wait()
    return 0


def hung(ng, redis_pid, seconds=3.0):
    """Calls every 20 ms for `seconds` while Redis is stopped: how many ng commands were slow."""
    ng.timeout = 5.0
    os.kill(redis_pid, signal.SIGSTOP)
    try:
        rows, end = [], time.monotonic() + seconds
        while time.monotonic() < end:
            rows += call(ng)
            time.sleep(0.02)
    finally:
        os.kill(redis_pid, signal.SIGCONT)
    slow = sorted(t for t in rows if t > 10)
    print(f"Redis hung {seconds:.0f} s: {len(rows)} ng commands, p50 {pct(rows, 50):.2f} ms, "
          f"{len(slow)} over 10 ms ({', '.join(f'{t:.0f}' for t in slow)} ms)")


if __name__ == "__main__":
    sys.exit(main())
