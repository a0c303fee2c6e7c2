"""Kamailio killed and started again (SIGKILL, then `up`), with the real daemons: calls in
progress go on through the new Kamailio (audio, re-INVITEs, feature codes, transfers typed
after the restart, BYE); a ringing call's CANCEL, which the new Kamailio cannot match, is
answered 481 and, when it is the INVITE's own, ends the call's media; nothing is left in
Redis, rtpengine or tm."""
import os
import signal
import socket
import time
import uuid

import pytest

from calls import callee, caller, read_port, register, talk
from conftest import PASSWORD, TENANT
from forged import SDP, STRANGER, send
from dtmf_calls import RELAY, caller_info, completed_codes, relayed_digits, type_over_audio
from harness import PARTIES, RtpPeer, Sipp, wait_for
from test_transfer import transfer_kinds, wait_kind
from transfer_calls import (TRUNK_SIDES, header, reinvited_xml, target, transferring_call,
                            trunk_client_call, who_hears, written_party)

from vpbx.tooling import stack

RESTART_S = 3.5     # kill to ready; the parties below wait 4 s before their next request


def test_a_cancel_after_a_restart_is_answered_and_ends_the_calls_media(pbx):
    """B rings when Kamailio is killed. The new Kamailio has no transaction for the INVITE:
    the caller's CANCEL gets 481 at once and its offer-only media session is deleted (the
    CANCEL comes from where the INVITE came, with its From tag). The same CANCEL from a
    stranger — another host, or another port of the caller's host — gets 481 and ends
    nothing."""
    b = Sipp(pbx.workdir, "callee_ringing", pbx.address, variables={"user": "201"})
    register(pbx, "201", b.port).passed()
    a = Sipp(pbx.workdir, "caller_cancel_orphan", pbx.address, duration_ms=4000,
             variables={"from_user": "202", "from_domain": TENANT, "to_user": "201",
                        "to_domain": TENANT})
    invite = wait_for(lambda: b.received("INVITE sip:201@"), what="B ringing")[0]
    callid = header(invite, "Call-ID")
    wait_for(lambda: callid in pbx.cfg.ng().calls(), what="the call's offer in rtpengine")
    restart_kamailio(pbx)
    for source in ((STRANGER, 0), ("127.0.0.1", 0)):
        assert send(pbx.cfg.sip_port, lambda src: cancel(invite, src), source=source) == \
            "SIP/2.0 481 Call/Transaction Does Not Exist"
    assert callid in pbx.cfg.ng().calls(), "a stranger's CANCEL ended the call's media"
    a.passed(timeout=10)                        # its CANCEL got 481 (no answer before)
    assert "SIP/2.0 481" in a.messages()
    wait_for(lambda: callid not in pbx.cfg.ng().calls(), timeout=2,
             what="the call's media session deleted")
    b.stop()                                    # B still rings: nothing can reach it now


def cancel(invite, source):
    """A CANCEL for the INVITE B received (the caller's From, To and Call-ID), as sent from
    `source`."""
    return ("\r\n".join([
        f"CANCEL sip:201@{TENANT} SIP/2.0",
        f"Via: SIP/2.0/UDP {source[0]}:{source[1]};branch=z9hG4bK{uuid.uuid4().hex};rport",
        f"From: {header(invite, 'From')}", f"To: {header(invite, 'To')}",
        f"Call-ID: {header(invite, 'Call-ID')}", "CSeq: 1 CANCEL", "Max-Forwards: 70",
        "Content-Length: 0"]) + "\r\n\r\n").encode()


def restart_kamailio(pbx):
    """SIGKILL Kamailio's process group (no process of it gets to clean up), then start it
    again; it must be up again within RESTART_S."""
    started = time.monotonic()
    old = stack.running(pbx.cfg)["kamailio"]
    os.killpg(old, signal.SIGKILL)
    deadline = started + 5
    while "kamailio" in stack.running(pbx.cfg) and time.monotonic() < deadline:
        time.sleep(0.05)
    stack.up(pbx.cfg, say=lambda _: None)
    assert stack.running(pbx.cfg)["kamailio"] != old
    assert time.monotonic() - started < RESTART_S


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


def reinviting_client(pbx, caller_user, caller_domain, to_user, wait_ms, port=None):
    """C calls to_user, waits wait_ms, puts the call on hold with a re-INVITE and takes it
    back with another one whose SDP moves its media to a new port (parties/client_reinvite.xml;
    c.moved is the RtpPeer at the new port)."""
    hold, resume = (PARTIES / "client_reinvite.xml").read_text().replace(
        "WAIT_MS", str(wait_ms)).split("CSeq: 3 INVITE")
    moved = RtpPeer(0xC)
    xml = hold + "CSeq: 3 INVITE" + resume.replace("[$rtp_port]", str(moved.port), 1)
    c = written_party(pbx, xml, "client", {"from_user": caller_user, "from_domain": caller_domain,
                                           "to_user": to_user, "to_domain": TENANT},
                      ssrc=0xC, port=port)
    c.moved = moved
    return c


def reinvited_callee(pbx, ext, hold_ms):
    """B: answers, takes two re-INVITEs (200 with its own SDP), hangs up hold_ms later."""
    xml = (PARTIES / "target.xml").read_text().replace("RING_MS", "0").replace(
        "HOLD_MS", str(hold_ms)).replace(
        "<!-- REINVITE -->\n", reinvited_xml(port_file="rport2") + reinvited_xml(port_file="rport3"))
    b = written_party(pbx, xml, "callee", {"user": ext}, ssrc=0xB)
    register(pbx, ext, b.port).passed()
    return b


@pytest.mark.parametrize("client", ["trunk", "extension"])
def test_a_re_invite_after_a_restart_moves_the_media(pbx, client):
    """A call answered before the restart: the client's re-INVITEs (hold, then resume at a
    new media port) go through the new Kamailio and rtpengine; B gets both, and the client's
    new port and B hear each other."""
    b = reinvited_callee(pbx, "202", hold_ms=2500)
    if client == "trunk":
        c = reinviting_client(pbx, "+4930123456", "carrier.example", "202", 4000,
                              port=pbx.trunk_port)
    else:
        c = reinviting_client(pbx, "201", TENANT, "202", 4000)
    c_port = read_port(pbx.workdir, c.name)                             # answered
    restart_kamailio(pbx)
    assert "CSeq: 2 INVITE" not in c.messages(), "the re-INVITE came before the restart"
    wait_for(lambda: (pbx.workdir / "client.rport3").exists(), timeout=10,
             what="C's re-INVITEs answered")
    invites = b.received("INVITE ")
    assert len(invites) == 3 and "a=sendonly" in invites[1] and "a=sendrecv" in invites[2]
    assert f"m=audio {c.moved.port} " not in invites[2], "media must stay anchored"
    c_port = int((pbx.workdir / "client.rport3").read_text())
    c.media.flush()
    c.media, old = c.moved, c.media
    parties = {"B": (b, read_port(pbx.workdir, b.name)), "C": (c, c_port)}
    assert who_hears(parties) == {"B": {"C"}, "C": {"B"}}
    old.flush()
    assert not old.received, "the client's old port still gets media"
    b.passed()                                  # B's BYE, through the new Kamailio
    c.passed()
    assert pbx.store.call_keys() == []


def test_feature_codes_typed_with_info_after_a_restart(pbx_transfer):
    """Digits typed with SIP INFO after the restart: a code is collected (not relayed), a
    digit outside it reaches the other party."""
    pbx = pbx_transfer
    b = callee(pbx, "202")
    register(pbx, "202", b.port).passed()
    a = caller_info(pbx, "201", "202", [(k, RELAY) for k in "1*100"], hold_ms=2500,
                    typing_after_ms=4000)
    read_port(pbx.workdir, a.name)                                      # answered
    restart_kamailio(pbx)
    assert a.sent("INFO ") == [], "typed before the restart"
    a.passed()
    b.passed()
    assert completed_codes(pbx, "party", "ext", "code") == [("caller", "201", "*100")]
    assert relayed_digits(b) == "1"


def blind_transfer_completes(pbx, a, b, c, c_port):
    """A has hung up while B rang: C hears music, then talks to B; B hangs up, ending C's call."""
    wait_kind(pbx, "blind")
    assert who_hears({"C": (c, c_port)}) == {"C": {"media"}}
    wait_kind(pbx, "completed", timeout=15)
    bc = {"B": (b, read_port(pbx.workdir, b.name)), "C": (c, c_port)}
    assert who_hears(bc) == {"B": {"C"}, "C": {"B"}}
    b.passed()
    c.passed()
    assert transfer_kinds(pbx) == ["started", "ringing", "blind", "completed"]


def test_a_blind_transfer_typed_with_info_after_a_restart(pbx_transfer):
    """Extension to extension: A typed *100 with INFO only after the restart and hung up
    while B rang; C talks to B."""
    pbx = pbx_transfer
    b = target(pbx, "100", ring_ms=3000, hold_ms=4000)
    a, c = transferring_call(pbx, "*100", hold_ms=300, typing_after_ms=4000)
    c_port = read_port(pbx.workdir, c.name)
    restart_kamailio(pbx)
    assert a.sent("INFO ") == [], "typed before the restart"
    a.passed()
    blind_transfer_completes(pbx, a, b, c, c_port)
    assert len(c.received("INVITE ")) == 1


@pytest.mark.parametrize("trunk", TRUNK_SIDES)
def test_a_blind_transfer_of_a_trunk_client_after_a_restart(pbx_transfer, trunk):
    """The client behind a trunk (calling in, or called out): A types *100 (RFC 4733) after
    the restart and hangs up while B rings; C talks to B."""
    pbx = pbx_transfer
    b = target(pbx, "100", ring_ms=6000, hold_ms=4000)
    a, c, ports = trunk_client_call(pbx, trunk, a_hold_ms=6000)
    restart_kamailio(pbx)
    type_over_audio(a.media, ports["A"], c.media, ports["C"], "*100")
    wait_kind(pbx, "started")
    a.passed()                                  # A hangs up while B rings
    blind_transfer_completes(pbx, a, b, c, ports["C"])


LATE_SDP = """Content-Type: application/sdp
Content-Length: [len]

v=0
o=- 3 3 IN IP4 [local_ip]
s=-
c=IN IP4 [media_ip]
t=0 0
m=audio [$rtp_port] RTP/AVP 0
a=rtpmap:0 PCMU/8000
"""


def late_callee(pbx, status, answer_ms):
    """B: rings, answers `status` answer_ms later (parties/callee_late_answer.xml); after a
    2xx it takes an ACK and a BYE; an error it sends once and leaves 2 s later (no ACK can
    reach it: the caller's goes to the proxy, which has no transaction to relay it by)."""
    answered = status.startswith("2")
    xml = ((PARTIES / "callee_late_answer.xml").read_text()
           .replace("ANSWER_MS", str(answer_ms)).replace("STATUS", status)
           .replace("ACK_MS", "2000").replace("BODY", LATE_SDP if answered else "Content-Length: 0\n"))
    if not answered:        # its error once, then 2 s for an ACK that cannot come, and out
        xml = xml.replace('<send retrans="500">\n    <![CDATA[\nSIP/2.0 STATUS'.replace(
            "STATUS", status), f'<send>\n    <![CDATA[\nSIP/2.0 {status}').replace(
            '<recv request="ACK" timeout="2000" ontimeout="no_ack" />',
            '<pause milliseconds="2000" />\n  <nop next="end" />').replace(
            "user,rtp_port", "user")
    path = pbx.workdir / "late_callee.xml"
    path.write_text(xml)
    media = RtpPeer(0xB)
    b = Sipp(pbx.workdir, str(path.with_suffix("")), pbx.address, name="late_callee",
             variables={"user": "201", **({"rtp_port": media.port} if answered else {})})
    register(pbx, "201", b.port).passed()
    return b


def waiting_caller(pbx):
    """A: calls 201 and takes whatever final answer comes (parties/probe.xml, ringing)."""
    path = pbx.workdir / "waiting_caller.xml"
    path.write_text((PARTIES / "probe.xml").read_text().replace(
        '<recv response="100" optional="true" />',
        '<recv response="100" optional="true" />\n  <recv response="180" optional="true" />'))
    return Sipp(pbx.workdir, str(path.with_suffix("")), pbx.address, name="waiting_caller",
                variables={"from_user": "202", "from_domain": TENANT, "to_user": "201",
                           "to_domain": TENANT, "max_forwards": 70, "extra_header": "X-A: 1"})


def finals(party):
    return [m.split("\n", 1)[0].strip() for m in party.received("SIP/2.0 ")
            if not m.startswith("SIP/2.0 1")]


@pytest.mark.parametrize("status", ["200 OK", "486 Busy Here"])
def test_a_final_answer_after_a_restart_ends_the_call_set_up(pbx, status):
    """B rings when Kamailio is killed and answers after the restart: no transaction here
    matches its answer, which comes from where the INVITE went. An error goes on to the
    caller. A 2xx cannot make the call any more (its record and the anchored SDP died with
    the transaction; relayed as it is, the call would run unanchored, unrecorded, and its
    BYE get 481): the caller gets 500 at once, B an ACK and a BYE. The media session goes."""
    b = late_callee(pbx, status, answer_ms=4000)
    a = waiting_caller(pbx)
    invite = wait_for(lambda: b.received("INVITE sip:201@"), what="B ringing")[0]
    callid = header(invite, "Call-ID")
    wait_for(lambda: callid in pbx.cfg.ng().calls(), what="the call's offer in rtpengine")
    restart_kamailio(pbx)
    assert not b.sent(f"SIP/2.0 {status}"), "B answered before the restart"
    wait_for(lambda: b.sent(f"SIP/2.0 {status}"), what="B's answer")
    answered_at = time.monotonic()
    wait_for(lambda: finals(a), timeout=3, what="the caller's final answer")
    assert time.monotonic() - answered_at < 1.0
    a.passed()
    b.passed()
    if status.startswith("2"):
        assert finals(a) == ["SIP/2.0 500 Server Internal Error - call set-up lost"]
        assert [m.split("\n", 1)[0] for m in b.received("")][-2:] == [
            f"{method} sip:201@127.0.0.1:{b.port} SIP/2.0" for method in ("ACK", "BYE")]
    else:
        assert finals(a) == [f"SIP/2.0 {status}"]
    wait_for(lambda: callid not in pbx.cfg.ng().calls(), timeout=2,
             what="the call's media session deleted")
    assert pbx.store.call_keys() == []


def test_a_strangers_final_answer_after_a_restart_changes_nothing(pbx):
    """While B rings after the restart, final answers forged from B's INVITE (a 200 with
    the stranger's Contact and SDP, a 486) from another host or another port of B's host are
    dropped: the caller gets nothing, the stranger no ACK or BYE, the media session stays.
    B's own answer then ends the call set-up."""
    b = late_callee(pbx, "486 Busy Here", answer_ms=6000)
    a = waiting_caller(pbx)
    invite = wait_for(lambda: b.received("INVITE sip:201@"), what="B ringing")[0]
    callid = header(invite, "Call-ID")
    restart_kamailio(pbx)
    strangers = []
    for source in ((STRANGER, 0), ("127.0.0.1", 0)):
        for forged in ("200 OK", "486 Busy Here"):
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind(source)
            sock.setblocking(False)
            sock.sendto(forged_answer(invite, forged, sock.getsockname()),
                        ("127.0.0.1", pbx.cfg.sip_port))
            strangers.append(sock)
    time.sleep(1.0)
    for sock in strangers:
        with pytest.raises(BlockingIOError):
            sock.recv(4096)                         # no ACK, no BYE for the stranger
        sock.close()
    assert finals(a) == [] and not b.sent("SIP/2.0 486")
    assert callid in pbx.cfg.ng().calls(), "a forged answer ended the call's media"
    a.passed(timeout=10)
    b.passed()
    assert finals(a) == ["SIP/2.0 486 Busy Here"]
    wait_for(lambda: callid not in pbx.cfg.ng().calls(), timeout=2,
             what="the call's media session deleted")


def forged_answer(invite, status, source):
    """A final answer to the INVITE B received, as a stranger at `source` makes it up."""
    lines = invite.replace("\r\n", "\n").split("\n\n", 1)[0].split("\n")[1:]
    keep = [line for line in lines if line.split(":", 1)[0].lower() in
            ("via", "from", "call-id", "cseq", "record-route")]
    body = SDP.format(ip=source[0], port=40000) if status.startswith("2") else ""
    head = [f"SIP/2.0 {status}", *keep, f"To: {header(invite, 'To')};tag=forged",
            f"Contact: <sip:201@{source[0]}:{source[1]}>"]
    if body:
        head.append("Content-Type: application/sdp")
    head.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(head) + "\r\n\r\n" + body).encode()
