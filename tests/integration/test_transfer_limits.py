"""Transfer abuse limits end to end: the tenant's transfers per minute, and clients on a trunk
sent out to an external number (trunk to trunk, the classic toll fraud)."""
import socket
import time

from calls import callee
from conftest import TENANT
from harness import PARTIES, RtpPeer, Sipp, read_port, wait_for
from test_refer import referrer
from test_transfer import client_call_to, failure_reasons, ports_of, transfer_kinds, wait_kind
from transfer_calls import header, target, transferring_call, unanswering_target, who_hears
from vpbx.core import limits
from vpbx.adapters.redis.store import transfers_key


def tenant_made_transfers(pbx, count):
    """As if the tenant had carried out `count` transfers in this minute already."""
    index, _ = limits.window(time.time(), 60)
    pbx.redis.set(transfers_key(TENANT, index), count, ex=121)
    return transfers_key(TENANT, index)


def counted(pbx):
    """The tenant's transfers counted, whatever minute each fell into."""
    return sum(int(pbx.redis.get(key)) for key in pbx.redis.keys(transfers_key(TENANT, "*")))


def test_a_code_transfer_over_the_tenants_cap_gives_a_tone_and_the_call_goes_on(pbx_transfer):
    pbx = pbx_transfer
    pbx.store.setting_set(TENANT, "transfer_max_per_minute", "1")
    tenant_made_transfers(pbx, 1)
    b = unanswering_target(pbx, "100", "callee_ringing")
    a, c = transferring_call(pbx, "*100", hold_ms=3500)
    ac = ports_of(pbx, A=a, C=c)
    wait_kind(pbx, "failed")
    time.sleep(1.5)                                              # the tone
    assert who_hears(ac) == {"A": {"C"}, "C": {"A"}}
    a.passed()
    c.passed()
    assert failure_reasons(pbx) == ["too_many_transfers"]
    assert b.received("INVITE ") == []                           # B was never called
    assert counted(pbx) == 1                                     # the refused one not counted
    b.stop()


def test_transfers_under_the_cap_are_counted(pbx_transfer):
    pbx = pbx_transfer
    pbx.store.setting_set(TENANT, "transfer_max_per_minute", "2")
    tenant_made_transfers(pbx, 1)
    b = target(pbx, "100", ring_ms=100, hold_ms=3000)
    a, c = transferring_call(pbx, "*100", hold_ms=1500)
    a.passed()
    wait_kind(pbx, "completed")
    b.passed()
    c.passed()
    assert counted(pbx) == 2


def test_a_refer_the_proxy_would_carry_out_over_the_cap_is_refused(pbx):
    pbx.store.ext_add(TENANT, "100")
    pbx.store.setting_set(TENANT, "transfer_max_per_minute", "1")
    tenant_made_transfers(pbx, 1)
    b = unanswering_target(pbx, "100", "callee_ringing")
    c = callee(pbx, "004930123456", port=pbx.outbound_port, ssrc=0xC)   # behind the trunk
    a = referrer(pbx, "Refer-To: <sip:100@t1.test>", 503, "004930123456")
    a.passed()                                          # 503, then the phone hangs up
    c.passed()
    refusal = a.received("SIP/2.0 503")[0]
    assert refusal.startswith("SIP/2.0 503 Service Unavailable - too many transfers")
    assert header(refusal, "Retry-After") == "60"
    assert a.received("NOTIFY ") == [] and c.received("REFER ") == []
    assert b.received("INVITE ") == []
    b.stop()


# ---- trunk to trunk ------------------------------------------------------------------

EXTERNAL = "00301234567"


def outbound_listener(pbx):
    """A socket at the outbound trunk's address: what the proxy sends there."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", pbx.outbound_port))
    sock.setblocking(False)
    return sock


def received(sock):
    found = []
    try:
        while True:
            found.append(sock.recv(65535))
    except BlockingIOError:
        return found


def test_a_client_on_a_trunk_is_not_transferred_out_by_default(pbx_transfer):
    pbx = pbx_transfer
    pbx.store.setting_set(TENANT, "transfer_external", "0030")
    outbound = outbound_listener(pbx)
    a, c, a_port = client_call_to(pbx, "202", a_hold_ms=6000)
    a.media.dtmf(a_port, f"*{EXTERNAL}#")
    wait_kind(pbx, "failed")
    a.passed()
    c.passed()
    assert failure_reasons(pbx) == ["trunk_to_trunk"]
    assert received(outbound) == []                     # nothing went to the outbound trunk
    outbound.close()


def test_with_trunk_to_trunk_on_a_client_on_a_trunk_is_transferred_out(pbx_transfer):
    pbx = pbx_transfer
    pbx.store.setting_set(TENANT, "transfer_external", "0030")
    pbx.store.setting_set(TENANT, "transfer_trunk_to_trunk", "on")
    b = target(pbx, EXTERNAL, ring_ms=100, hold_ms=6000, port=pbx.outbound_port)
    a, c, a_port = client_call_to(pbx, "202", a_hold_ms=6000)
    a.media.dtmf(a_port, f"*{EXTERNAL}#")
    wait_kind(pbx, "answered")
    a.passed()
    wait_kind(pbx, "completed")
    bc = {"B": (b, read_port(pbx.workdir, b.name)), "C": (c, read_port(pbx.workdir, c.name))}
    assert who_hears(bc) == {"B": {"C"}, "C": {"B"}}
    b.passed()
    c.passed()
    assert b.received("INVITE ")[0].startswith(f"INVITE sip:{EXTERNAL}@127.0.0.1:{pbx.outbound_port} ")


def test_an_extensions_client_may_still_be_transferred_out(pbx_transfer):
    """The setting is about clients on trunks: an extension's call goes out as before."""
    pbx = pbx_transfer
    pbx.store.setting_set(TENANT, "transfer_external", "0030")
    b = target(pbx, EXTERNAL, ring_ms=100, hold_ms=3000, port=pbx.outbound_port)
    a, c = transferring_call(pbx, f"*{EXTERNAL}#", hold_ms=1500)
    a.passed()
    wait_kind(pbx, "completed")
    b.passed()
    c.passed()
    assert transfer_kinds(pbx)[-1] == "completed"


def test_a_refer_sending_a_trunks_party_out_is_refused_by_default(pbx):
    pbx.store.setting_set(TENANT, "transfer_external", "0030")
    c = callee(pbx, "004930123456", port=pbx.outbound_port, ssrc=0xC)   # behind the trunk
    a = referrer(pbx, f"Refer-To: <sip:{EXTERNAL}@t1.test>", 403, "004930123456")
    a.passed()
    c.passed()
    assert a.received("SIP/2.0 403")[0].startswith(
        "SIP/2.0 403 Forbidden - a trunk's party to an external number")
    assert c.received("REFER ") == [] and len(c.received("INVITE ")) == 1


def slow_referrer(pbx, refer_to_header, to_user):
    """parties/referrer.xml as test_refer.referrer() fills it in for a REFER the proxy
    carries out, but the REFER waits 2 s after the call is answered (the test moves the
    tenant's outbound trunk meanwhile)."""
    xml = ((PARTIES / "referrer.xml").read_text()
           .replace("REFER_TO_HEADER", refer_to_header).replace("EXPECT", "202")
           .replace("STAY_MS", "100").replace("ON_ACCEPT", 'next="terminated"')
           .replace('<pause milliseconds="300" />', '<pause milliseconds="2000" />', 1))
    path = pbx.workdir / "slow_referrer.xml"
    path.write_text(xml)
    media = RtpPeer(0xA)
    party = Sipp(pbx.workdir, str(path.with_suffix("")), pbx.address, name="slow_referrer",
                 variables={"from_user": "201", "from_domain": TENANT, "to_user": to_user,
                            "to_domain": TENANT, "rtp_port": media.port})
    party.media = media
    return party


def test_with_trunk_to_trunk_on_a_refer_sends_a_trunks_party_out(pbx):
    pbx.store.setting_set(TENANT, "transfer_external", "0030")
    pbx.store.setting_set(TENANT, "transfer_trunk_to_trunk", "on")
    # The client is reached through the inbound trunk's address (the outbound trunk while
    # the call is set up), the target through the outbound trunk.
    pbx.store.trunk_add(TENANT, f"127.0.0.1:{pbx.trunk_port}", outbound=True)
    c = callee(pbx, "004930123456", port=pbx.trunk_port, ssrc=0xC)
    a = slow_referrer(pbx, f"Refer-To: <sip:{EXTERNAL}@t1.test>", "004930123456")
    wait_for(lambda: pbx.store.call_keys(), timeout=5, what="the client's call")
    pbx.store.trunk_add(TENANT, f"127.0.0.1:{pbx.outbound_port}", outbound=True)
    b = target(pbx, EXTERNAL, ring_ms=100, hold_ms=3000, port=pbx.outbound_port)
    a.passed()
    b.passed()
    c.passed()
    notifies = a.received("NOTIFY ")
    assert "SIP/2.0 100 Trying" in notifies[0] and "SIP/2.0 200 OK" in notifies[1]
    assert b.received("INVITE ")[0].startswith(f"INVITE sip:{EXTERNAL}@127.0.0.1:{pbx.outbound_port} ")
    assert c.received("REFER ") == []
