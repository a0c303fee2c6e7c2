"""Fuzz from a stranger's address (127.0.0.7): RFC 4475-style malformed messages, mutated
requests (also in a real call's dialog) and mutated DTMF reports, over UDP and TCP (fuzz.py).
The proxy must answer or drop each on purpose: no process crashes or restarts, OPTIONS is
answered throughout, no Python traceback in the log and no 500, nothing left behind, and a
real call works afterwards.

Seeded: VPBX_FUZZ_SEED repeats a run (the seed is printed). VPBX_FUZZ_MESSAGES and
VPBX_FUZZ_RATE (per second) size it: `make fuzz` runs the long version."""
import os
import random
from collections import Counter

from vpbx.tooling import stack

from calls import callee, caller, register, talk
from conftest import TENANT
from fuzz import Fuzzer, Target
from kamlog import LogMark
from rawua import RawUa

MESSAGES = int(os.environ.get("VPBX_FUZZ_MESSAGES", "3000"))
RATE = float(os.environ.get("VPBX_FUZZ_RATE", "150"))


def kamailio_pids(cfg):
    pgid = int((cfg.var / "run" / "kamailio.pid").read_text())
    return {pid for pid, _ in stack.group_pids(pgid)}


def established_call(pbx):
    """A call 202 -> 201 between two raw user agents that take whatever is relayed to them."""
    b = RawUa(pbx.cfg.sip_port, "201", TENANT)
    b.register()
    b.answer = True
    a = RawUa(pbx.cfg.sip_port, "202", TENANT)
    d = a.call("201")
    call = {"callid": d["callid"], "caller_uri": f"sip:202@{TENANT}", "caller_tag": a.tag,
            "callee_uri": f"sip:201@{TENANT}", "callee_tag": d["remote_tag"],
            "caller_contact": a.contact, "callee_contact": d["remote_contact"], "route": d["route"]}
    return a, b, call


def test_fuzz_from_a_stranger_changes_nothing_and_the_pbx_keeps_working(pbx_transfer, capsys):
    pbx = pbx_transfer
    seed = int(os.environ.get("VPBX_FUZZ_SEED") or random.randrange(1 << 32))
    print(f"\nfuzz seed {seed} (VPBX_FUZZ_SEED={seed} repeats this run)")
    a, b, call = established_call(pbx)
    assert pbx.redis.exists(f"vpbx:call:{{{call['callid']}}}"), "the call's dialog record"
    pids = kamailio_pids(pbx.cfg)
    log = LogMark(pbx.cfg)
    events_before = {event_id for event_id, _ in pbx.calls.events(10000)}

    fuzzer = Fuzzer(Target(pbx.cfg.sip_port, pbx.cfg.dtmf_port, TENANT, call), seed)
    transports = iter(["udp", "tcp"] * MESSAGES)

    def options():
        try:
            return stack.sip_options(pbx.cfg, next(transports), timeout=5)
        except OSError:
            return False
    probes = fuzzer.run(MESSAGES, RATE, probe=options)
    fuzzer.stop()
    with capsys.disabled():
        print(f"\n{fuzzer.figures()}\nKamailio's log during the fuzz:")
        print("\n".join(f"  {n:7d}  {what}" for n, what in log.complaints()))
        # Codes and transfers the stranger's forged digits set off (shown, not judged here:
        # the sender checks of issue 10 are to make them none).
        events = Counter(f"{e['type']} {e.get('kind') or e.get('code', '')}".strip()
                         for event_id, e in pbx.calls.events(10000) if event_id not in events_before)
        print("PBX events during the fuzz: " + (", ".join(f"{k} {n}" for k, n in events.most_common())
                                                or "none"))

    log.assert_no_python_errors()
    assert fuzzer.internal_errors == [], "\n".join(
        f"{line} after {category}: {message[:600]!r}"
        for line, category, message in fuzzer.internal_errors[:5])
    assert kamailio_pids(pbx.cfg) == pids, "Kamailio's processes changed (a crash or restart)"
    assert len(probes) >= fuzzer.duration - 2 and all(probes), f"OPTIONS unanswered: {probes}"
    # The fuzz reached the proxy: it refused a good share of it with clear answers (503: a
    # rate limit for the stranger's address).
    assert fuzzer.answers["4xx"] + fuzzer.statuses[503] > MESSAGES / 10, fuzzer.answers

    # The call's parties end it (a forged BYE may have ended it already: any final answer).
    assert a.hang_up().startswith("SIP/2.0 ")
    a.close()
    b.close()

    # A real call with media afterwards.
    bob = callee(pbx, "201")
    register(pbx, "201", bob.port).passed()
    talk(pbx, caller(pbx, "202", "201"), bob)
