"""Trunks: a carrier's call to an extension, and an extension's call out through the outbound trunk."""
from calls import callee, caller, register, talk, client_on_trunk


def test_trunk_call_to_extension(pbx):
    b = callee(pbx, "201")
    register(pbx, "201", b.port).passed()
    a = client_on_trunk(pbx, "201")
    talk(pbx, a, b)
    assert "INVITE sip:201@127.0.0.1:" in b.messages()


def test_extension_calls_out_through_outbound_trunk(pbx):
    out = callee(pbx, "carrier", port=pbx.outbound_port, hangup="callee")
    a = caller(pbx, "201", "004930123456", hangup="callee")
    talk(pbx, a, out)
    assert f"INVITE sip:004930123456@127.0.0.1:{pbx.outbound_port} SIP/2.0" in out.messages()
