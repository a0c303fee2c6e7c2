"""Calls that end before an answer: CANCEL while ringing (the caller gets 487), a busy callee
(its 486 reaches the caller); nothing may be left in rtpengine, Redis or tm."""
from conftest import TENANT
from calls import probe, register
from harness import Sipp


def test_cancel_while_ringing(pbx):
    b = Sipp(pbx.workdir, "callee_ringing", pbx.address, variables={"user": "201"})
    register(pbx, "201", b.port).passed()
    a = Sipp(pbx.workdir, "caller_cancel", pbx.address, duration_ms=500,
             variables={"from_user": "201", "from_domain": TENANT, "to_user": "201", "to_domain": TENANT})
    a.passed()
    b.passed()
    assert "CANCEL sip:201@127.0.0.1" in b.messages()
    assert "SIP/2.0 487" in a.messages()


def test_busy_callee_answer_reaches_the_caller(pbx):
    b = Sipp(pbx.workdir, "callee_busy", pbx.address)
    register(pbx, "201", b.port).passed()
    assert probe(pbx, "202", "201") == "486 Busy Here"
    b.passed()
