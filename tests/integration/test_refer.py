"""Phones' own transfers (REFER) through the proxy: Refer-To normalised to the tenant's
extension URI, NOTIFY relayed back, bad REFERs answered here with a clear error."""
import re
import socket
from urllib.parse import quote

import pytest

from calls import callee, caller, probe, register
from conftest import TENANT
from harness import PARTIES, RtpPeer, Sipp, read_port, wait_for
from transfer_calls import (CLIENT, TRUNK_SIDES, header, reinvited_xml, target, trunk_port,
                            who_hears, written_party)


def filled_referrer(scenario, refer_to_header, expect, on_accept, stay_ms):
    """The text of a referrer scenario (parties/referrer.xml, referrer_callee.xml) for this REFER."""
    return ((PARTIES / f"{scenario}.xml").read_text()
            .replace("REFER_TO_HEADER", refer_to_header).replace("EXPECT", str(expect))
            .replace("STAY_MS", str(stay_ms))
            .replace("ON_ACCEPT", f'next="{on_accept}"' if expect == 202 else ""))


def referrer(pbx, refer_to_header, expect, to_user, *, on_accept="accepted", name="referrer",
             media=None, hold=False, stay_ms=100):
    """Extension 201 calls to_user, then sends a REFER (parties/referrer.xml); with `hold`,
    it puts the call on hold first. After a REFER the proxy carried out, it hangs up stay_ms
    after the final NOTIFY (unless hung up first)."""
    path = pbx.workdir / f"{name}.xml"
    xml = filled_referrer("referrer", refer_to_header, expect, on_accept, stay_ms)
    if hold:
        xml = xml.replace('  <pause milliseconds="300" />\n', HOLD, 1).replace(
            "CSeq: 2 REFER", "CSeq: 3 REFER")
    path.write_text(xml)
    media = media or RtpPeer(0xA)
    party = Sipp(pbx.workdir, str(path.with_suffix("")), pbx.address, name=name,
                 variables={"from_user": "201", "from_domain": TENANT, "to_user": to_user,
                            "to_domain": TENANT, "rtp_port": media.port})
    party.media = media
    return party


def called_referrer(pbx, refer_to_header, expect, *, on_accept="accepted", name="referrer",
                    stay_ms=100):
    """Extension 201, registered, answers a call and then sends a REFER
    (parties/referrer_callee.xml): referrer() for the called side of the call."""
    path = pbx.workdir / f"{name}.xml"
    path.write_text(filled_referrer("referrer_callee", refer_to_header, expect, on_accept, stay_ms))
    media = RtpPeer(0xA)
    party = Sipp(pbx.workdir, str(path.with_suffix("")), pbx.address, name=name,
                 variables={"user": "201", "domain": TENANT, "rtp_port": media.port,
                            "outdir": pbx.workdir, "party": name})
    party.media = media
    register(pbx, "201", party.port).passed()
    return party


def client_trunk(pbx, trunk, refer=None):
    """The port of the trunk C is behind (TRUNK_SIDES); with `refer` ("pass", "terminate")
    its refer mode is set."""
    port = trunk_port(pbx, trunk)
    if refer:
        pbx.store.trunk_add(TENANT, f"127.0.0.1:{port}", outbound=trunk == "trunk_callee",
                            refer=refer)
    return port


def client_call(pbx, trunk, refer_to_header, expect, *, referee=False, on_accept="accepted",
                stay_ms=100, c_hangs_up_ms=None):
    """The phone (201) in a call with the client C behind a trunk (TRUNK_SIDES), sending a
    REFER once answered (referrer() or called_referrer()). C talks and waits for a BYE
    (calls.callee / calls.caller), or hangs up c_hangs_up_ms after the answer; with
    `referee`, C takes the REFER, NOTIFYs and hangs up (parties/referee.xml,
    referee_caller.xml). -> (A, C)."""
    number, port = CLIENT[trunk], client_trunk(pbx, trunk)
    hangs_up = c_hangs_up_ms is not None
    if trunk == "trunk_callee":
        if referee:
            c = Sipp(pbx.workdir, "referee", pbx.address, name="referee", port=port,
                     variables={"user": number})
        else:
            c = callee(pbx, number, port=port, ssrc=0xC,
                       **({"hangup": "callee", "hold_ms": c_hangs_up_ms} if hangs_up else {}))
        return referrer(pbx, refer_to_header, expect, number, on_accept=on_accept,
                        stay_ms=stay_ms), c
    a = called_referrer(pbx, refer_to_header, expect, on_accept=on_accept, stay_ms=stay_ms)
    if referee:
        media = RtpPeer(0xC)
        c = Sipp(pbx.workdir, "referee_caller", pbx.address, name="referee", port=port,
                 variables={"from_user": number, "from_domain": "carrier.example",
                            "to_user": "201", "to_domain": TENANT, "rtp_port": media.port,
                            "outdir": pbx.workdir, "party": "referee"})
        c.media = media
    else:
        c = caller(pbx, number, "201", from_domain="carrier.example", port=port, ssrc=0xC,
                   **({"hangup": "caller", "hold_ms": c_hangs_up_ms} if hangs_up
                      else {"hangup": "callee"}))
    return a, c


def invites_to_the_client(c, trunk):
    """INVITEs C received beyond the original call's (a callee's own INVITE)."""
    return c.received("INVITE ")[1 if trunk == "trunk_callee" else 0:]


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
        pbx, f"Refer-To: <sip:100@{pbx.address}?Replaces=abc%40h%3Bto-tag%3Dt1%3Bfrom-tag%3Df1>", 202)
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


def test_a_trunk_that_rejects_refer_makes_a_relayed_refer_fail(pbx):
    """Why `terminate` is the trunks' default: the client's trunk answers REFER 405 (as
    parties/callee.xml does), and a relayed REFER (`pass`) reaches the phone as that 405."""
    pbx.store.ext_add(TENANT, "100")
    pbx.store.trunk_add(TENANT, f"127.0.0.1:{pbx.outbound_port}", outbound=True, refer="pass")
    c = callee(pbx, "004930123456", port=pbx.outbound_port, ssrc=0xC)
    a = referrer(pbx, "Refer-To: <sip:100@t1.test>", 405, "004930123456")
    a.passed()
    c.passed()
    assert len(c.received("REFER ")) == 1


@pytest.mark.parametrize("stay_ms", [100, 8000])
@pytest.mark.parametrize("trunk", TRUNK_SIDES)
def test_a_refer_towards_a_trunk_is_carried_out_by_the_proxy(pbx, trunk, stay_ms):
    """The trunk's party (the client, C; behind a trunk that takes no REFER, `terminate`, on
    either side of the call) never sees the REFER: the proxy answers it, calls B, joins C
    and B when B answers, and reports to the phone with NOTIFYs. The phone hangs up then,
    or, if it stays, is hung up by the proxy."""
    pbx.store.ext_add(TENANT, "100")
    stays = stay_ms > 1000
    b = target(pbx, "100", ring_ms=300, hold_ms=8000 if stays else 3000)
    a, c = client_call(pbx, trunk, "Refer-To: <sip:100@t1.test>", 202, on_accept="terminated",
                       stay_ms=stay_ms)
    a.passed()                                 # 202, NOTIFY 100, NOTIFY 200, a BYE
    assert bool(a.received("BYE ")) == stays and bool(a.sent("BYE ")) != stays
    c_port = read_port(pbx.workdir, c.name)
    bc = {"B": (b, read_port(pbx.workdir, b.name)), "C": (c, c_port)}
    assert who_hears(bc) == {"B": {"C"}, "C": {"B"}}
    b.passed()                                 # B hangs up: the proxy ends C's call
    c.passed()
    assert c.received("REFER ") == [] and invites_to_the_client(c, trunk) == []
    notifies = a.received("NOTIFY ")
    assert "SIP/2.0 100 Trying" in notifies[0] and "SIP/2.0 200 OK" in notifies[1]
    invite = b.received("INVITE ")[0]
    assert f"<sip:{CLIENT[trunk]}@t1.test>;tag=" in header(invite, "From")   # the client
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


@pytest.mark.parametrize("trunk", TRUNK_SIDES)
def test_a_trunk_set_to_pass_gets_the_refer_relayed(pbx, trunk):
    """A trunk whose `refer` is `pass`, on either side of the call, gets the phone's REFER
    (Refer-To normalised), its NOTIFY reaches the phone, and its new call to the target,
    through the same trunk, reaches B: B and C talk."""
    pbx.store.ext_add(TENANT, "100")
    port = client_trunk(pbx, trunk, refer="pass")
    a, c = client_call(pbx, trunk, f"Refer-To: <sip:100@{pbx.address}>", 202, referee=True)
    a.wait()
    c.wait()
    assert c.received("REFER "), (
        f"the trunk ({trunk}, refer=pass) got no REFER; the phone received: "
        + " | ".join(m.split("\n", 1)[0].strip() for m in a.received()))
    a.passed()                                 # 202 and NOTIFY from the trunk, its BYE
    c.passed()
    refer = c.received("REFER ")[0]
    assert header(refer, "Refer-To") == "<sip:100@t1.test>"
    assert header(refer, "Referred-By") == "<sip:201@t1.test>"
    assert "SIP/2.0 200 OK" in a.received("NOTIFY ")[0]
    b = target(pbx, "100", ring_ms=100, hold_ms=3000)
    c2 = written_party(pbx, (PARTIES / "caller.xml").read_text().replace(
        "Max-Forwards: 70\n", f"Max-Forwards: 70\nReferred-By: <sip:201@{TENANT}>\n", 1),
        "transferee", {"from_user": CLIENT[trunk], "from_domain": "carrier.example",
                       "to_user": "100", "to_domain": TENANT, "hangup": "callee"},
        ssrc=0xC, port=port)
    transferee_talks_to_target(pbx, b, c2)


def transferee_talks_to_target(pbx, b, c2):
    """The transferee's new call reached the target: they hear each other, and the target's
    INVITE says who referred it."""
    parties = {"B": (b, read_port(pbx.workdir, b.name)),
               "C": (c2, read_port(pbx.workdir, c2.name))}
    assert who_hears(parties) == {"B": {"C"}, "C": {"B"}}
    b.passed()
    c2.passed()
    assert header(b.received("INVITE ")[0], "Referred-By") == f"<sip:201@{TENANT}>"


def test_a_blind_refer_is_relayed_end_to_end(pbx):
    """Blind phone transfer through the proxy: A's REFER reaches the transferee with the
    normalised Refer-To; the transferee's call to that URI, with Referred-By, reaches the
    target, and the two talk."""
    pbx.store.ext_add(TENANT, "100")
    a, c = referring_call(pbx, f"Refer-To: <sip:100@{pbx.address}>", 202)
    user, domain = header(c.received("REFER ")[0], "Refer-To").strip("<>").split(":", 1)[1].split("@")
    b = target(pbx, user, ring_ms=100, hold_ms=3000)
    c2 = written_party(pbx, (PARTIES / "caller.xml").read_text().replace(
        "Max-Forwards: 70\n", f"Max-Forwards: 70\nReferred-By: <sip:201@{TENANT}>\n", 1),
        "transferee", {"from_user": "202", "from_domain": TENANT, "to_user": user,
                       "to_domain": domain, "hangup": "callee"}, ssrc=0xC)
    transferee_talks_to_target(pbx, b, c2)


def test_the_transferees_invite_with_replaces_reaches_the_target(pbx):
    """Attended phone transfer, last step: the transferee calls the target with Replaces
    naming the target's call with the transferor; the proxy routes it to the target. Only
    once A's REFER with that Replaces has been relayed to the transferee: before, the same
    INVITE is refused (and from a stranger's address too)."""
    pbx.store.ext_add(TENANT, "100")
    consulted = target(pbx, "100", ring_ms=100, hold_ms=8000, name="consulted")
    a = caller(pbx, "201", "100", hold_ms=6000)                   # A's call with B
    wait_for(lambda: pbx.store.call_keys(), timeout=5, what="A's call with B")
    replaces = replaces_of(pbx, pbx.store.call_keys()[0])
    for ip in ("127.0.0.1", "127.0.0.7"):
        assert probe(pbx, "202", "100", extra_header=f"Replaces: {replaces}", ip=ip) == (
            "403 Forbidden - not a party of the call Replaces names")
    assert len(consulted.received("INVITE ")) == 1
    referring_call(pbx, f"Refer-To: <sip:100@{TENANT}?Replaces={quote(replaces, safe='')}>", 202)
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


def replaces_of(pbx, key):
    """The Replaces value naming a call (as A's phone would put it in Refer-To): the call's
    Call-ID, B's (the callee's) tag as to-tag, A's (the caller's) as from-tag."""
    record = pbx.redis.hgetall(key)
    return "{};to-tag={};from-tag={}".format(key.split("{", 1)[1].rstrip("}"),
                                              record["callee_tag"], record["caller_tag"])


def consultation(pbx, b_ext="100", hold_ms=3000, a_ext="201", reinvited="200 OK"):
    """A (a_ext) calls B and talks to it: -> (B, A's party of that call, its Replaces value).
    B expects the re-INVITE that moves it onto the client's media, answered `reinvited`."""
    b = target(pbx, b_ext, ring_ms=100, hold_ms=hold_ms, name="consulted", reinvited=reinvited)
    a2 = caller(pbx, a_ext, b_ext, hangup="callee", name="consulting", ssrc=0xA)
    wait_for(lambda: pbx.store.call_keys(), timeout=5, what="A's call with B")
    return b, a2, replaces_of(pbx, pbx.store.call_keys()[0])


@pytest.mark.parametrize("ender", ["B", "C"])
@pytest.mark.parametrize("trunk", TRUNK_SIDES)
def test_an_attended_refer_towards_a_trunk_joins_the_two_calls(pbx, trunk, ender):
    """A talks to the client C (behind a trunk that takes no REFER, on either side of A's
    call with C) and to B, then sends REFER with Replaces naming its call with B: the proxy
    answers it, moves B onto C's media with a re-INVITE in B's own dialog, hangs up A's end
    of that dialog and reports to A. Then B or C hangs up, and the proxy hangs up the other."""
    pbx.store.ext_add(TENANT, "100")
    b, a2, replaces = consultation(pbx, hold_ms=3000 if ender == "B" else 10000)
    a, c = client_call(pbx, trunk, refer_to_replacing(replaces), 202, on_accept="terminated",
                       c_hangs_up_ms=4000 if ender == "C" else None)
    a.passed()                                 # 202, NOTIFY 100, NOTIFY 200, its BYE
    a2.passed()                                # the BYE (as from B) in A's call with B
    wait_for(lambda: (pbx.workdir / "consulted.rport2").exists(), timeout=5, what="B's re-INVITE")
    b_port = int((pbx.workdir / "consulted.rport2").read_text())
    parties = {"B": (b, b_port), "C": (c, read_port(pbx.workdir, c.name))}
    assert who_hears(parties) == {"B": {"C"}, "C": {"B"}}
    b.passed()                                 # one hangs up, the proxy hangs up the other
    c.passed()
    assert c.received("REFER ") == [] and invites_to_the_client(c, trunk) == []  # C: untouched
    notifies = a.received("NOTIFY ")
    assert "SIP/2.0 100 Trying" in notifies[0] and "SIP/2.0 200 OK" in notifies[1]
    reinvite = b.received("INVITE ")[1]
    assert header(reinvite, "Call-ID") == replaces.split(";")[0]      # in B's own dialog
    assert header(reinvite, "From").endswith(replaces.split("from-tag=")[1])
    assert a2.received("BYE ")
    if ender == "C":                           # the proxy's BYE to B, in B's dialog, as A
        assert header(b.received("BYE ")[0], "Call-ID") == replaces.split(";")[0]


def refer_to_replacing(replaces, user="100"):
    """Refer-To of an attended transfer: `user` with Replaces (naming A's call with B)."""
    return "Refer-To: <sip:{}@{}?Replaces={}>".format(
        user, TENANT, replaces.replace(";", "%3B").replace("=", "%3D").replace("@", "%40"))


def joining_referrer(pbx, replaces, expect=202, on_accept="terminated", hold=False, user="100"):
    """A's phone in its call with the client (behind the trunk): REFER with Replaces."""
    return referrer(pbx, refer_to_replacing(replaces, user), expect, "004930123456",
                    on_accept=on_accept, hold=hold)


def test_a_join_b_refuses_leaves_both_calls_as_they_were(pbx):
    """B answers the re-INVITE 488: A is told (NOTIFY 480) and is back with the client; A's
    call with B is relayed as before, and B's BYE reaches A."""
    pbx.store.ext_add(TENANT, "100")
    b, a2, replaces = consultation(pbx, hold_ms=3000, reinvited="488 Not Acceptable Here")
    c = callee(pbx, "004930123456", port=pbx.outbound_port, ssrc=0xC)
    a = joining_referrer(pbx, replaces)
    a.passed()                                 # NOTIFY 100, NOTIFY 480, then it hangs up
    assert "SIP/2.0 480" in a.received("NOTIFY ")[1]
    c.passed()                                 # A's BYE reached the client as usual
    parties = {"A": (a2, read_port(pbx.workdir, a2.name)), "B": (b, read_port(pbx.workdir, b.name))}
    assert who_hears(parties) == {"A": {"B"}, "B": {"A"}}
    b.passed()
    a2.passed()                                # B's BYE, relayed


def test_an_attended_refer_naming_no_call_is_reported_481(pbx):
    pbx.store.ext_add(TENANT, "100")
    c = callee(pbx, "004930123456", port=pbx.outbound_port, ssrc=0xC)
    a = joining_referrer(pbx, "nosuch@h;to-tag=x;from-tag=y", on_accept="notified")
    a.passed()
    c.passed()
    assert "SIP/2.0 481" in a.received("NOTIFY ")[0]
    assert c.received("REFER ") == []


def test_an_attended_refer_naming_another_partys_call_is_refused(pbx):
    pbx.store.ext_add(TENANT, "100")
    b, a2, replaces = consultation(pbx, a_ext="202", reinvited=None, hold_ms=2000)  # not A's
    c = callee(pbx, "004930123456", port=pbx.outbound_port, ssrc=0xC)
    a = joining_referrer(pbx, replaces, expect=403)
    a.passed()
    c.passed()
    b.passed()
    a2.passed()


HOLD = """  <send retrans="500">
    <![CDATA[
INVITE [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
From: <sip:[$from_user]@[$from_domain]>;tag=[pid]r[call_number]
[last_To:]
Call-ID: [call_id]
[routes]
CSeq: 2 INVITE
Contact: <sip:[$from_user]@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Type: application/sdp
Content-Length: [len]

v=0
o=- 1 2 IN IP4 [local_ip]
s=-
c=IN IP4 [media_ip]
t=0 0
m=audio [$rtp_port] RTP/AVP 0 101
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=sendonly

    ]]>
  </send>
  <recv response="100" optional="true" />
  <recv response="200" />
  <send>
    <![CDATA[
ACK [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
From: <sip:[$from_user]@[$from_domain]>;tag=[pid]r[call_number]
[last_To:]
Call-ID: [call_id]
[routes]
CSeq: 2 ACK
Max-Forwards: 70
Content-Length: 0

    ]]>
  </send>
  <pause milliseconds="300" />
"""
# The held client expects the proxy's re-INVITE that takes it off hold: sendrecv, in the
# session the phone began (o=- 1 2 with its hold offer: now version 3), then waits for a BYE.
RESUMED = reinvited_xml(port_file="rport", expect=("a=sendrecv", "o=- 1 3 IN"), answer="""\
Content-Type: application/sdp
Content-Length: [len]

v=0
o=- 2 4 IN IP4 [local_ip]
s=-
c=IN IP4 [media_ip]
t=0 0
m=audio [$rtp_port] RTP/AVP 0
a=rtpmap:0 PCMU/8000
a=sendrecv
""")


def test_a_client_the_phone_put_on_hold_is_taken_off_hold_after_the_join(pbx):
    """Phones hold the client before they transfer: after the join the proxy re-INVITEs the
    client (same media address, sendrecv, the phone's session) so that it talks again."""
    pbx.store.ext_add(TENANT, "100")
    b, a2, replaces = consultation(pbx)
    c = written_party(pbx, (PARTIES / "callee_hold.xml").read_text()
                      .replace('variables="user,rtp_port"', 'variables="user,rtp_port,outdir,party"')
                      .replace('  <recv request="BYE" />', RESUMED + '  <recv request="BYE" />'),
                      "held", {"user": "004930123456"}, ssrc=0xC, port=pbx.outbound_port)
    a = joining_referrer(pbx, replaces, hold=True)
    a.passed()
    a2.passed()
    wait_for(lambda: (pbx.workdir / "consulted.rport2").exists(), timeout=5, what="B's re-INVITE")
    parties = {"B": (b, int((pbx.workdir / "consulted.rport2").read_text())),
               "C": (c, read_port(pbx.workdir, c.name))}
    assert who_hears(parties) == {"B": {"C"}, "C": {"B"}}
    records = [pbx.redis.hgetall(key) for key in pbx.store.call_keys()]
    client = next(r for r in records if "004930123456" in r.get("callee_uri", ""))
    assert "o=- 2 4 " in client["callee_sdp"]              # C's answer off hold: relinked with
    b.passed()
    c.passed()
    assert "a=sendrecv" in b.received("INVITE ")[1]        # B is offered the resumed client
    offers = [re.search(r"m=audio (\d+)", m) for m in c.received("INVITE ")]
    assert all(offers), c.received("INVITE ")
    ports = {m.group(1) for m in offers if m}
    assert len(c.received("INVITE ")) == 3 and len(ports) == 1   # call, hold, off hold: one port


def test_an_attended_refer_joining_two_trunk_calls_is_refused(pbx):
    """B behind a trunk too: it would need a re-INVITE onto C's media, which a trunk's leg
    never gets -> 501, and both calls go on."""
    a2 = callee(pbx, "201", name="consulting", ssrc=0xA)          # A's call with B: B called A
    register(pbx, "201", a2.port).passed()
    b = caller(pbx, "0301234", "201", port=pbx.trunk_port, hold_ms=3000, name="from-trunk")
    wait_for(lambda: pbx.store.call_keys(), timeout=5, what="B's call with A")
    key = pbx.store.call_keys()[0]
    record = pbx.redis.hgetall(key)
    replaces = "{};to-tag={};from-tag={}".format(key.split("{", 1)[1].rstrip("}"),
                                                  record["caller_tag"], record["callee_tag"])
    pbx.store.setting_set(TENANT, "transfer_external", "0")    # B's number may be a target
    c = callee(pbx, "004930123456", port=pbx.outbound_port, ssrc=0xC)
    a = joining_referrer(pbx, replaces, expect=501, user="0301234")
    a.passed()
    c.passed()
    b.passed()
    a2.passed()


def test_an_invite_replacing_no_call_is_481(pbx):
    assert probe(pbx, "201", "202", extra_header="Replaces: nosuchcall@h;to-tag=t1;from-tag=f1") == (
        "481 Call/Transaction Does Not Exist - Replaces names no call")
