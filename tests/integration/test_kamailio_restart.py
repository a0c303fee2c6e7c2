"""Kamailio killed and started again (SIGKILL, then `up`), with the real daemons: a call in
progress goes on and ends through the new Kamailio; a ringing call's CANCEL, which the new
Kamailio cannot match, is answered 481 (it got no answer at all); nothing else is left in
Redis or tm."""
import os
import signal
import time

from calls import callee, caller, read_port, register, talk
from conftest import PASSWORD, TENANT
from harness import Sipp, wait_for

from vpbx.tooling import stack


def test_a_cancel_after_a_restart_is_answered(pbx):
    b = Sipp(pbx.workdir, "callee_ringing", pbx.address, variables={"user": "201"})
    register(pbx, "201", b.port).passed()
    a = Sipp(pbx.workdir, "caller_cancel_orphan", pbx.address, duration_ms=4000,
             variables={"from_user": "202", "from_domain": TENANT, "to_user": "201",
                        "to_domain": TENANT})
    wait_for(lambda: "INVITE sip:201@" in b.messages(), what="B ringing")
    wait_for(lambda: pbx.cfg.ng().calls(), what="the call's offer in rtpengine")
    restart_kamailio(pbx)
    a.passed()                                  # its CANCEL got 481
    assert "SIP/2.0 481" in a.messages()
    b.stop()                                    # B still rings: nothing can reach it now
    # Who sent the CANCEL cannot be checked without the transaction, so the proxy leaves the
    # offer-only media session to rtpengine's timeouts (a forged CANCEL must not end a
    # call's media): it is there, and the test ends it.
    [callid] = pbx.cfg.ng().calls()
    pbx.cfg.ng().command("delete", call_id=callid)


def restart_kamailio(pbx):
    os.killpg(stack.running(pbx.cfg)["kamailio"], signal.SIGKILL)
    deadline = time.monotonic() + 5
    while "kamailio" in stack.running(pbx.cfg) and time.monotonic() < deadline:
        time.sleep(0.05)
    stack.up(pbx.cfg, say=lambda _: None)


def test_a_call_in_progress_goes_on_through_the_restarted_proxy(pbx):
    """The call's Record-Route and its Redis record are all a new Kamailio needs: audio goes
    on (rtpengine keeps the session), and the BYE is relayed and cleans up."""
    b = callee(pbx, "201")
    register(pbx, "201", b.port).passed()
    a = caller(pbx, "200", "201", password=PASSWORD, hold_ms=6000)
    read_port(pbx.workdir, a.name)                                       # answered
    restart_kamailio(pbx)
    talk(pbx, a, b)                             # both hear each other after the restart
    a.passed()                                  # A's BYE, through the new Kamailio
    b.passed()
    assert pbx.store.call_keys() == []
