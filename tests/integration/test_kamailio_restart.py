"""Kamailio killed and started again while a call rings (SIGKILL, then `up`), with the real
daemons: the caller's CANCEL, which the new Kamailio cannot match, is answered 481 and the
call's media session goes; nothing is left in rtpengine, Redis or tm."""
import os
import signal
import time

from conftest import TENANT
from calls import register
from harness import Sipp, wait_for

from vpbx.tooling import stack


def test_a_cancel_after_a_restart_is_answered_and_cleans_up(pbx):
    b = Sipp(pbx.workdir, "callee_ringing", pbx.address, variables={"user": "201"})
    register(pbx, "201", b.port).passed()
    a = Sipp(pbx.workdir, "caller_cancel_orphan", pbx.address, duration_ms=4000,
             variables={"from_user": "202", "from_domain": TENANT, "to_user": "201",
                        "to_domain": TENANT})
    wait_for(lambda: "INVITE sip:201@" in b.messages(), what="B ringing")
    wait_for(lambda: pbx.cfg.ng().calls(), what="the call's offer in rtpengine")
    os.killpg(stack.running(pbx.cfg)["kamailio"], signal.SIGKILL)
    deadline = time.monotonic() + 5
    while "kamailio" in stack.running(pbx.cfg) and time.monotonic() < deadline:
        time.sleep(0.05)
    stack.up(pbx.cfg, say=lambda _: None)
    a.passed()                                  # its CANCEL got 481
    assert "SIP/2.0 481" in a.messages()
    wait_for(lambda: pbx.cfg.ng().calls() == [], what="the offer-only media session gone")
    b.stop()                                    # B still rings: nothing can reach it now
