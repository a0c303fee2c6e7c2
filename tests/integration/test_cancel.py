"""The caller gives up while the callee rings: CANCEL reaches the callee, the caller gets 487."""
from conftest import TENANT
from calls import register
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
