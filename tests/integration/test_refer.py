"""Phones' own transfers (REFER) through the proxy: Refer-To normalised to the tenant's
extension URI, NOTIFY relayed back, bad REFERs answered here with a clear error."""
import socket

import pytest

from calls import callee, caller, probe, register
from conftest import TENANT
from harness import PARTIES, RtpPeer, Sipp, read_port, wait_for
from transfer_calls import header, target, who_hears, written_party


def referrer(pbx, refer_to_header, expect, to_user, *, on_accept="accepted", name="referrer",
             media=None):
    """Extension 201 calls to_user, then sends a REFER (parties/referrer.xml)."""
    path = pbx.workdir / f"{name}.xml"
    path.write_text((PARTIES / "referrer.xml").read_text()
                    .replace("REFER_TO_HEADER", refer_to_header).replace("EXPECT", str(expect))
                    .replace("ON_ACCEPT", f'next="{on_accept}"' if expect == 202 else ""))
    media = media or RtpPeer(0xA)
    party = Sipp(pbx.workdir, str(path.with_suffix("")), pbx.address, name=name,
                 variables={"from_user": "201", "from_domain": TENANT, "to_user": to_user,
                            "to_domain": TENANT, "rtp_port": media.port})
    party.media = media
    return party


def referring_call(pbx, refer_to_header, expect, *, referee="202"):
    """201 calls referee and sends a REFER -> (referrer, referee), both finished."""
    b = Sipp(pbx.workdir, "referee", pbx.address, name="referee", variables={"user": referee})
    register(pbx, referee, b.port).passed()
    a = referrer(pbx, refer_to_header, expect, referee)
    a.passed()
    b.passed()
    return a, b


@pytest.mark.parametrize("refer_to", ["<sip:100@{proxy}>", "<sip:100@t1.test>", "<tel:100>"])
def test_refer_to_is_normalised_and_the_notify_relayed(pbx, refer_to):
    pbx.store.ext_add(TENANT, "100")
    a, b = referring_call(pbx, "Refer-To: " + refer_to.format(proxy=pbx.address), 202)
    refer = b.received("REFER ")[0]
    assert header(refer, "Refer-To") == "<sip:100@t1.test>"
    assert header(refer, "Referred-By") == "<sip:201@t1.test>"
    assert "SIP/2.0 200 OK" in a.received("NOTIFY ")[0]


@pytest.mark.parametrize("refer_to,code", [
    ("X-No-Refer-To: 1", 400),                             # no Refer-To
    ("Refer-To: <http://example.com/>", 400),              # unparsable
    ("Refer-To: <sip:300@t2.test>", 403),                  # another tenant
    ("Refer-To: <sip:004930123456@t1.test>", 403),         # external, not allowed
    ("Refer-To: <sip:999@t1.test>", 403),                  # no such extension
])
def test_bad_refers_are_answered_by_the_proxy(pbx, refer_to, code):
    a, b = referring_call(pbx, refer_to, code)
    assert b.received("REFER ") == []                      # never reached the transferee


def test_a_refer_with_replaces_is_relayed_with_it(pbx):
    pbx.store.ext_add(TENANT, "100")
    a, b = referring_call(
        pbx, "Refer-To: <sip:100@{}?Replaces=abc%40h%3Bto-tag%3Dt1%3Bfrom-tag%3Df1>".format(
            pbx.address), 202)
    assert header(b.received("REFER ")[0], "Refer-To") == (
        "<sip:100@t1.test?Replaces=abc%40h%3Bto-tag%3Dt1%3Bfrom-tag%3Df1>")


def test_an_invite_replacing_a_call_of_another_tenant_is_refused(pbx):
    pbx.store.ext_add("t2.test", "301")
    b = callee(pbx, "301")
    register(pbx, "301", b.port, domain="t2.test").passed()
    a = caller(pbx, "300", "301", from_domain="t2.test", to_domain="t2.test", hold_ms=4000)
    wait_for(lambda: pbx.store.call_keys(), timeout=5, what="the t2 call")
    key = pbx.store.call_keys()[0]
    other = pbx.redis.hgetall(key)
    callid = key.split("{", 1)[1].rstrip("}")
    status = probe(pbx, "201", "202", extra_header="Replaces: {};to-tag={};from-tag={}".format(
        callid, other["callee_tag"], other["caller_tag"]))
    assert status.startswith("403")
    a.passed()
    b.passed()


def test_a_refer_towards_a_trunk_is_carried_out_by_the_proxy(pbx):
    """The trunk's party (the client, C) never sees the REFER: the proxy answers it, calls B,
    joins C and B when B answers, and reports to the phone with NOTIFYs."""
    pbx.store.ext_add(TENANT, "100")
    c = callee(pbx, "004930123456", port=pbx.outbound_port, ssrc=0xC)   # behind the trunk
    b = target(pbx, "100", ring_ms=300, hold_ms=3000)
    a = referrer(pbx, "Refer-To: <sip:100@t1.test>", 202, "004930123456",
                 on_accept="terminated")
    a.passed()                                 # 202, NOTIFY 100, NOTIFY 200, its BYE
    c_port = read_port(pbx.workdir, c.name)
    bc = {"B": (b, read_port(pbx.workdir, b.name)), "C": (c, c_port)}
    assert who_hears(bc) == {"B": {"C"}, "C": {"B"}}
    b.passed()                                 # B hangs up: the proxy ends C's call
    c.passed()
    assert c.received("REFER ") == []
    notifies = a.received("NOTIFY ")
    assert "SIP/2.0 100 Trying" in notifies[0] and "SIP/2.0 200 OK" in notifies[1]
    invite = b.received("INVITE ")[0]
    assert header(invite, "From").startswith("<sip:004930123456@t1.test>")   # the client
    assert header(invite, "Referred-By") == "<sip:201@t1.test>"


def test_a_refer_outside_a_dialog_is_refused(pbx):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(5)
        port = sock.getsockname()[1]
        sock.sendto((
            f"REFER sip:202@{TENANT} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-refer-ood;rport\r\n"
            f"From: <sip:201@{TENANT}>;tag=ood1\r\nTo: <sip:202@{TENANT}>\r\n"
            "Call-ID: refer-outside-a-dialog\r\nCSeq: 1 REFER\r\nMax-Forwards: 70\r\n"
            f"Contact: <sip:201@127.0.0.1:{port}>\r\nRefer-To: <sip:100@{TENANT}>\r\n"
            "Content-Length: 0\r\n\r\n").encode(), ("127.0.0.1", pbx.cfg.sip_port))
        reply = sock.recv(4096).decode()
    assert reply.startswith("SIP/2.0 403 Forbidden - REFER outside a dialog")


def test_a_trunk_set_to_pass_gets_the_refer_relayed(pbx):
    pbx.store.ext_add(TENANT, "100")
    pbx.store.trunk_add(TENANT, f"127.0.0.1:{pbx.outbound_port}", outbound=True, refer="pass")
    c = Sipp(pbx.workdir, "referee", pbx.address, name="referee", port=pbx.outbound_port,
             variables={"user": "004930123456"})
    a = referrer(pbx, f"Refer-To: <sip:100@{pbx.address}>", 202, "004930123456")
    a.passed()
    c.passed()
    assert header(c.received("REFER ")[0], "Refer-To") == "<sip:100@t1.test>"


def test_the_transferees_invite_with_replaces_reaches_the_target(pbx):
    """Attended phone transfer, last step: the transferee calls the target with Replaces
    naming the target's call with the transferor; the proxy routes it to the target."""
    pbx.store.ext_add(TENANT, "100")
    consulted = target(pbx, "100", ring_ms=100, hold_ms=6000, name="consulted")
    a = caller(pbx, "201", "100", hold_ms=4000)                   # A's call with B
    wait_for(lambda: pbx.store.call_keys(), timeout=5, what="A's call with B")
    key = pbx.store.call_keys()[0]
    record = pbx.redis.hgetall(key)
    replaces = "{};to-tag={};from-tag={}".format(key.split("{", 1)[1].rstrip("}"),
                                                  record["callee_tag"], record["caller_tag"])
    b = target(pbx, "100", ring_ms=100, hold_ms=1000, name="replacing", ssrc=0xD)  # B's phone
    c = written_party(pbx, (PARTIES / "caller.xml").read_text().replace(
        "Max-Forwards: 70\n", f"Max-Forwards: 70\nReplaces: {replaces}\n"
        f"Referred-By: <sip:201@{TENANT}>\n", 1),
        "transferee", {"from_user": "202", "from_domain": TENANT, "to_user": "100",
                       "to_domain": TENANT, "hangup": "callee"}, ssrc=0xC)
    b.passed()
    c.passed()
    a.passed()
    consulted.passed()
    invite = b.received("INVITE ")[0]
    assert header(invite, "Replaces") == replaces
    assert header(invite, "Referred-By") == f"<sip:201@{TENANT}>"
