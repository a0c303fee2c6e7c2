"""PBX transfers end to end: SIPp parties, the real proxy, rtpengine and Redis. Who hears
whom is checked with RTP (each party sends its own SSRC; "media" is what rtpengine plays)."""
import time

import pytest

from calls import callee, caller, register
from dtmf_calls import type_over_audio
from harness import PARTIES, read_port, wait_for
from transfer_calls import (CLIENT, TRUNK_SIDES, header, target, transferring_call,
                            trunk_client_call, unanswering_target, who_hears, written_party)

def transfer_kinds(pbx):
    return [e["kind"] for _, e in pbx.calls.events() if e["type"] == "transfer"]


def wait_kind(pbx, kind, timeout=10):
    wait_for(lambda: kind in transfer_kinds(pbx), timeout=timeout, what=f"transfer event {kind}")


def failure_reasons(pbx):
    return [e["reason"] for _, e in pbx.calls.events() if e.get("kind") == "failed"]


def talking_again(ac):
    """After the failure tone A and C hear each other again."""
    wait_for(lambda: who_hears(ac, seconds=0.4) == {"A": {"C"}, "C": {"A"}}, timeout=4,
             what="A and C talking again")


def attended_to_completion(pbx, a, b, c, ports):
    """B answered: A and B talk while C hears the hold media; A hangs up: C and B talk; B
    hangs up, which ends C's call too. The events are those of an attended transfer."""
    wait_kind(pbx, "answered")
    parties = {"A": (a, ports["A"]), "B": (b, read_port(pbx.workdir, b.name)),
               "C": (c, ports["C"])}
    assert who_hears(parties) == {"A": {"B"}, "B": {"A"}, "C": {"media"}}     # consultation
    a.passed()                                                                  # A hangs up
    wait_kind(pbx, "completed")
    assert who_hears({"B": parties["B"], "C": parties["C"]}) == {"B": {"C"}, "C": {"B"}}
    b.passed()                          # B hangs up: the proxy ends C's call too
    c.passed()
    assert transfer_kinds(pbx) == ["started", "ringing", "answered", "completed"]


def test_attended_transfer(pbx_transfer):
    pbx = pbx_transfer
    b = target(pbx, "100", ring_ms=200, hold_ms=5000)
    a, c = transferring_call(pbx, "*100", hold_ms=3000)
    ports = {name: read_port(pbx.workdir, party.name) for name, party in (("A", a), ("C", c))}
    attended_to_completion(pbx, a, b, c, ports)
    assert len(c.received("INVITE ")) == 1                  # C never got a re-INVITE
    invite = b.received("INVITE ")[0]
    assert header(invite, "From").startswith("<sip:201@t1.test>;tag=")
    assert header(invite, "P-Asserted-Identity") == "<sip:201@t1.test>"
    assert header(invite, "Referred-By") == "<sip:201@t1.test>"


def ports_of(pbx, **parties):
    return {name: (party, read_port(pbx.workdir, party.name)) for name, party in parties.items()}


def test_blind_transfer(pbx_transfer):
    pbx = pbx_transfer
    b = target(pbx, "100", ring_ms=3000, hold_ms=5000)
    a, c = transferring_call(pbx, "*100", hold_ms=300)         # A hangs up while B rings
    ac = ports_of(pbx, A=a, C=c)
    a.passed()
    wait_kind(pbx, "blind")
    assert who_hears({"C": ac["C"]}) == {"C": {"media"}}        # C waits with music
    wait_kind(pbx, "completed")
    bc = {"B": (b, read_port(pbx.workdir, b.name)), "C": ac["C"]}
    assert who_hears(bc) == {"B": {"C"}, "C": {"B"}}
    b.passed()
    c.passed()
    assert transfer_kinds(pbx) == ["started", "ringing", "blind", "completed"]
    assert len(c.received("INVITE ")) == 1


def test_return_while_the_target_rings(pbx_transfer):
    pbx = pbx_transfer
    b = unanswering_target(pbx, "100", "callee_ringing")
    a, c = transferring_call(pbx, "*100*1", gap_ms=300, hold_ms=3000)
    ac = ports_of(pbx, A=a, C=c)
    wait_kind(pbx, "returned")
    b.passed()                                                  # B was cancelled
    assert who_hears(ac) == {"A": {"C"}, "C": {"A"}}
    a.passed()
    c.passed()
    assert transfer_kinds(pbx) == ["started", "ringing", "returned"]


def test_return_during_the_consultation(pbx_transfer):
    pbx = pbx_transfer
    b = target(pbx, "100", ring_ms=100, hold_ms=8000)
    a, c = transferring_call(pbx, "*100*1", gap_ms=600, hold_ms=3000)
    ac = ports_of(pbx, A=a, C=c)
    wait_kind(pbx, "returned")
    b.passed()                                                  # the proxy hung up on B
    assert who_hears(ac) == {"A": {"C"}, "C": {"A"}}
    a.passed()
    c.passed()
    assert transfer_kinds(pbx) == ["started", "ringing", "answered", "returned"]


def test_busy_target_a_hears_a_tone_and_is_back_with_c(pbx_transfer):
    pbx = pbx_transfer
    b = unanswering_target(pbx, "100", "callee_busy")
    a, c = transferring_call(pbx, "*100", hold_ms=4000)
    ac = ports_of(pbx, A=a, C=c)
    wait_kind(pbx, "failed")
    b.passed()
    assert who_hears(ac, seconds=0.6) == {"A": {"media"}, "C": {"media"}}   # tone; music
    talking_again(ac)
    a.passed()
    c.passed()
    assert failure_reasons(pbx) == ["busy"]


def test_target_hangs_up_during_the_consultation(pbx_transfer):
    pbx = pbx_transfer
    b = target(pbx, "100", ring_ms=100, hold_ms=1000)          # B hangs up after 1 s
    a, c = transferring_call(pbx, "*100", hold_ms=4000)
    ac = ports_of(pbx, A=a, C=c)
    b.passed()
    wait_kind(pbx, "returned")
    assert who_hears(ac) == {"A": {"C"}, "C": {"A"}}
    a.passed()
    c.passed()


def test_setting_off_no_transfer(pbx):
    pbx.store.ext_add("t1.test", "100")
    b = unanswering_target(pbx, "100", "callee_ringing")
    a, c = transferring_call(pbx, "*100", hold_ms=500)
    a.passed()
    c.passed()
    assert transfer_kinds(pbx) == [] and b.received("INVITE ") == []
    b.proc.kill()


def test_the_client_hangs_up_while_the_target_rings(pbx_transfer):
    pbx = pbx_transfer
    b = unanswering_target(pbx, "100", "callee_ringing")
    a, c = transferring_call(pbx, "*100", hold_ms=6000, c_hangs_up_ms=2000)
    c.passed()
    b.passed()                                                  # B was cancelled
    a.passed()                                                  # A got C's BYE
    assert a.received("BYE ")
    assert transfer_kinds(pbx) == ["started", "ringing", "failed"]


def test_a_failed_blind_transfer_calls_a_back(pbx_transfer):
    pbx = pbx_transfer
    b = target(pbx, "100", ring_ms=2000, busy=True)
    back = target(pbx, "201", ring_ms=300, hold_ms=3000, name="recall", ssrc=0xA)
    a, c = transferring_call(pbx, "*100", hold_ms=300)          # A leaves at once
    c_port = read_port(pbx.workdir, c.name)
    a.passed()
    b.passed()
    wait_kind(pbx, "recalled")
    parties = {"A": (back, read_port(pbx.workdir, back.name)), "C": (c, c_port)}
    assert who_hears(parties) == {"A": {"C"}, "C": {"A"}}
    back.passed()                       # A hangs up the call-back: the proxy ends C's call
    c.passed()
    assert transfer_kinds(pbx) == ["started", "ringing", "blind", "failed", "recall", "ringing",
                                  "recalled"]
    invite = back.received("INVITE ")[0]
    assert header(invite, "From").startswith("<sip:202@t1.test>;tag=")    # the client waits


def client_call_to(pbx, ext, *, a_hold_ms):
    """C (+4930123456, through the tenant's trunk) calls extension A, who answers, stays
    a_hold_ms and hangs up. -> (A, C, A's media port)."""
    a = callee(pbx, ext, hangup="callee", hold_ms=a_hold_ms, ssrc=0xA)
    register(pbx, ext, a.port).passed()
    c = caller(pbx, "+4930123456", ext, from_domain="carrier.example", port=pbx.trunk_port,
               hangup="callee", ssrc=0xC)
    return a, c, read_port(pbx.workdir, a.name)


def test_with_the_callers_number_the_target_sees_the_client(pbx_transfer):
    pbx = pbx_transfer
    pbx.store.setting_set("t1.test", "transfer_caller_id", "on")
    b = target(pbx, "100", ring_ms=100, hold_ms=4000)
    a, c, a_port = client_call_to(pbx, "202", a_hold_ms=2500)
    a.media.dtmf(a_port, "*100")                # the employee types on the phone (RFC 4733)
    wait_kind(pbx, "answered")
    a.passed()
    wait_kind(pbx, "completed")
    bc = {"B": (b, read_port(pbx.workdir, b.name)), "C": (c, read_port(pbx.workdir, c.name))}
    assert who_hears(bc) == {"B": {"C"}, "C": {"B"}}
    b.passed()
    c.passed()                                  # the proxy's BYE reached the client
    invite = b.received("INVITE ")[0]
    # The client's number and name (t_uac_send drops display names: the proxy restores it).
    assert header(invite, "From").startswith('"Caller +4930123456" <sip:+4930123456@t1.test>;tag=')
    assert header(invite, "P-Asserted-Identity") == "<sip:+4930123456@t1.test>"
    assert header(invite, "Referred-By") == "<sip:202@t1.test>"


def test_without_the_callers_number_the_target_sees_the_transferor(pbx_transfer):
    pbx = pbx_transfer
    b = target(pbx, "100", ring_ms=100, hold_ms=4000)
    a, c, a_port = client_call_to(pbx, "202", a_hold_ms=2500)
    a.media.dtmf(a_port, "*100")
    a.passed()
    b.passed()
    c.passed()
    invite = b.received("INVITE ")[0]
    assert header(invite, "From").startswith("<sip:202@t1.test>;tag=")
    assert header(invite, "P-Asserted-Identity") == "<sip:202@t1.test>"


@pytest.mark.parametrize("trunk", TRUNK_SIDES)
def test_attended_transfer_of_a_trunk_client(pbx_transfer, trunk):
    """The client C behind a trunk on either side of its call with A (202, typing on its
    phone, RFC 4733), with the caller's number on: A and B talk while C hears music, A hangs
    up, C and B talk; B sees the client's number; C never gets a re-INVITE."""
    pbx = pbx_transfer
    pbx.store.setting_set("t1.test", "transfer_caller_id", "on")
    b = target(pbx, "100", ring_ms=200, hold_ms=7000)
    a, c, ports = trunk_client_call(pbx, trunk, a_hold_ms=4500)
    type_over_audio(a.media, ports["A"], c.media, ports["C"], "*100")
    attended_to_completion(pbx, a, b, c, ports)
    assert c.received("INVITE ")[1 if trunk == "trunk_callee" else 0:] == []   # no re-INVITE
    invite = b.received("INVITE ")[0]
    assert f"<sip:{CLIENT[trunk]}@t1.test>;tag=" in header(invite, "From")
    assert header(invite, "P-Asserted-Identity") == f"<sip:{CLIENT[trunk]}@t1.test>"
    assert header(invite, "Referred-By") == "<sip:202@t1.test>"


@pytest.mark.parametrize("trunk", TRUNK_SIDES)
def test_blind_transfer_of_a_trunk_client(pbx_transfer, trunk):
    """The client C behind a trunk on either side of its call with A (202, typing on its
    phone): A hangs up while B rings, C hears music, then talks to B; B sees A's extension."""
    pbx = pbx_transfer
    b = target(pbx, "100", ring_ms=3000, hold_ms=4000)
    a, c, ports = trunk_client_call(pbx, trunk, a_hold_ms=2000)
    type_over_audio(a.media, ports["A"], c.media, ports["C"], "*100")
    a.passed()                                                  # A hangs up while B rings
    wait_kind(pbx, "blind")
    assert who_hears({"C": (c, ports["C"])}) == {"C": {"media"}}        # C waits with music
    wait_kind(pbx, "completed")
    bc = {"B": (b, read_port(pbx.workdir, b.name)), "C": (c, ports["C"])}
    assert who_hears(bc) == {"B": {"C"}, "C": {"B"}}
    b.passed()
    c.passed()
    assert transfer_kinds(pbx) == ["started", "ringing", "blind", "completed"]
    assert c.received("INVITE ")[1 if trunk == "trunk_callee" else 0:] == []   # no re-INVITE
    invite = b.received("INVITE ")[0]
    assert header(invite, "From").startswith("<sip:202@t1.test>;tag=")
    assert header(invite, "Referred-By") == "<sip:202@t1.test>"


def test_no_answer_a_hears_a_tone_and_is_back_with_c(pbx_transfer):
    pbx = pbx_transfer
    pbx.store.setting_set("t1.test", "transfer_no_answer_timeout", "5")
    b = unanswering_target(pbx, "100", "callee_ringing")
    a, c = transferring_call(pbx, "*100", hold_ms=8000)
    ac = ports_of(pbx, A=a, C=c)
    wait_kind(pbx, "failed", timeout=8)
    b.passed()                                                  # cancelled after 5 s
    talking_again(ac)
    a.passed()
    c.passed()
    assert failure_reasons(pbx) == ["no_answer"]


@pytest.mark.parametrize("code,reason", [("*200", "not_registered"), ("*202", "own_call")])
def test_an_invalid_target_gives_a_tone_and_the_call_goes_on(pbx_transfer, code, reason):
    pbx = pbx_transfer
    a, c = transferring_call(pbx, code, hold_ms=2500)
    ac = ports_of(pbx, A=a, C=c)
    wait_kind(pbx, "failed")
    time.sleep(1.5)                                              # the tone
    assert who_hears(ac) == {"A": {"C"}, "C": {"A"}}
    a.passed()
    c.passed()
    assert failure_reasons(pbx) == [reason]


def test_after_a_transfer_re_invites_are_answered_by_the_proxy(pbx_transfer):
    pbx = pbx_transfer
    b = target(pbx, "100", ring_ms=100, hold_ms=7000)
    a = callee(pbx, "202", hangup="callee", hold_ms=2000, ssrc=0xA)
    register(pbx, "202", a.port).passed()
    c = written_party(pbx, (PARTIES / "client_reinvite.xml").read_text().replace("WAIT_MS", "3500"),
                      "client", {"from_user": "+4930123456", "from_domain": "carrier.example",
                                 "to_user": "202", "to_domain": "t1.test"},
                      ssrc=0xC, port=pbx.trunk_port)
    a.media.dtmf(read_port(pbx.workdir, a.name), "*100")
    a.passed()
    wait_kind(pbx, "completed")
    c_port = read_port(pbx.workdir, "client")
    wait_for(lambda: (pbx.workdir / "client.rport3").exists(), timeout=8,
             what="C's re-INVITEs answered")
    # Hold and resume answered by the proxy with C's own rtpengine port; media flows on.
    assert int((pbx.workdir / "client.rport2").read_text()) == c_port
    assert int((pbx.workdir / "client.rport3").read_text()) == c_port
    bc = {"B": (b, read_port(pbx.workdir, b.name)), "C": (c, c_port)}
    assert who_hears(bc) == {"B": {"C"}, "C": {"B"}}
    b.passed()
    c.passed()
    assert len(b.received("INVITE ")) == 1                     # B never saw C's re-INVITEs


def test_the_target_transfers_the_client_on(pbx_transfer):
    pbx = pbx_transfer
    pbx.store.ext_add("t1.test", "103")
    b = target(pbx, "100", ring_ms=100, hold_ms=5000)
    d = target(pbx, "103", ring_ms=100, hold_ms=4000, name="second", ssrc=0xD)
    a, c = transferring_call(pbx, "*100", hold_ms=1500)
    c_port = read_port(pbx.workdir, c.name)
    a.passed()
    wait_kind(pbx, "completed")
    b.media.dtmf(read_port(pbx.workdir, b.name), "*103")     # B types on its phone
    wait_for(lambda: transfer_kinds(pbx).count("completed") == 2, timeout=10,
             what="the second transfer")
    b.passed()
    cd = {"C": (c, c_port), "D": (d, read_port(pbx.workdir, d.name))}
    assert who_hears(cd) == {"C": {"D"}, "D": {"C"}}
    d.passed()
    c.passed()
    invite = d.received("INVITE ")[0]
    assert header(invite, "Referred-By") == "<sip:100@t1.test>"


def test_when_the_call_back_fails_too_c_hears_a_tone_and_is_hung_up(pbx_transfer):
    pbx = pbx_transfer
    pbx.store.setting_set("t1.test", "transfer_recall_retries", "0")
    b = target(pbx, "100", ring_ms=1500, busy=True)
    back = target(pbx, "201", ring_ms=200, busy=True, name="recall")
    a, c = transferring_call(pbx, "*100", hold_ms=300)
    c_port = read_port(pbx.workdir, c.name)
    a.passed()
    b.passed()
    back.passed()
    assert who_hears({"C": (c, c_port)}, seconds=0.6) == {"C": {"media"}}     # the tone
    c.passed()                                  # then the proxy's BYE
    assert transfer_kinds(pbx) == ["started", "ringing", "blind", "failed", "recall", "ringing",
                                   "failed"]


def test_the_clients_privacy_is_kept(pbx_transfer):
    """Caller-number on, and the client asked for privacy: B sees an anonymous From, the
    identity only in P-Asserted-Identity, with Privacy: id."""
    pbx = pbx_transfer
    pbx.store.setting_set("t1.test", "transfer_caller_id", "on")
    b = target(pbx, "100", ring_ms=100, hold_ms=3000)
    a = callee(pbx, "202", hangup="callee", hold_ms=2000, ssrc=0xA)
    register(pbx, "202", a.port).passed()
    c = written_party(pbx, (PARTIES / "caller.xml").read_text().replace(
        "Max-Forwards: 70\n", "Max-Forwards: 70\nPrivacy: id\n"
        "P-Asserted-Identity: <sip:+4930123456@carrier.example>\n", 1),
        "client", {"from_user": "anonymous", "from_domain": "carrier.example",
                   "to_user": "202", "to_domain": "t1.test", "hangup": "callee"},
        ssrc=0xC, port=pbx.trunk_port)
    a.media.dtmf(read_port(pbx.workdir, a.name), "*100")
    a.passed()
    b.passed()
    c.passed()
    invite = b.received("INVITE ")[0]
    assert header(invite, "From").startswith('"Anonymous" <sip:anonymous@anonymous.invalid>;tag=')
    assert header(invite, "P-Asserted-Identity") == "<sip:+4930123456@t1.test>"
    assert header(invite, "Privacy") == "id"


def test_an_external_number_the_tenant_allows_is_called_through_its_trunk(pbx_transfer):
    pbx = pbx_transfer
    pbx.store.setting_set("t1.test", "transfer_external", "0030")
    b = target(pbx, "00301234567", ring_ms=100, hold_ms=4000, port=pbx.outbound_port)
    a, c = transferring_call(pbx, "*00301234567#", hold_ms=1500)
    a.passed()
    wait_kind(pbx, "completed")
    bc = {"B": (b, read_port(pbx.workdir, b.name)), "C": (c, read_port(pbx.workdir, c.name))}
    assert who_hears(bc) == {"B": {"C"}, "C": {"B"}}
    b.passed()
    c.passed()
    invite = b.received("INVITE ")[0]
    assert invite.startswith(f"INVITE sip:00301234567@127.0.0.1:{pbx.outbound_port} ")


def test_external_numbers_are_refused_by_default(pbx_transfer):
    pbx = pbx_transfer
    a, c = transferring_call(pbx, "*0301234#", hold_ms=1500)
    a.passed()
    c.passed()
    assert failure_reasons(pbx) == ["no_such_extension"]


def test_after_a_transfer_the_targets_re_invite_is_answered_by_the_proxy(pbx_transfer):
    pbx = pbx_transfer
    b = target(pbx, "100", ring_ms=100, hold_ms=3000, reinvite_after_ms=2500)
    a, c = transferring_call(pbx, "*100", hold_ms=1000)
    a.passed()
    wait_kind(pbx, "completed")
    b_port = read_port(pbx.workdir, b.name)
    wait_for(lambda: (pbx.workdir / f"{b.name}.rport2").exists(), timeout=8,
             what="B's re-INVITE answered")
    assert int((pbx.workdir / f"{b.name}.rport2").read_text()) == b_port   # same rtpengine port
    bc = {"B": (b, b_port), "C": (c, read_port(pbx.workdir, c.name))}
    assert who_hears(bc) == {"B": {"C"}, "C": {"B"}}
    b.passed()
    c.passed()
    assert len(c.received("INVITE ")) == 1                      # C saw nothing of it


@pytest.mark.parametrize("ring_ms", [50, 150, 250, 350])
def test_the_targets_answer_and_the_transferors_bye_at_the_same_moment(pbx_transfer, ring_ms):
    """B's 200 and A's BYE arrive about together (on different workers): whichever the proxy
    applies first, C ends up talking to B and nothing is lost or left behind."""
    pbx = pbx_transfer
    b = target(pbx, "100", ring_ms=ring_ms, hold_ms=3000)
    a, c = transferring_call(pbx, "*100", hold_ms=300)
    a.passed()
    wait_kind(pbx, "completed")
    bc = {"B": (b, read_port(pbx.workdir, b.name)), "C": (c, read_port(pbx.workdir, c.name))}
    assert who_hears(bc) == {"B": {"C"}, "C": {"B"}}
    b.passed()
    c.passed()
    assert transfer_kinds(pbx)[-1] == "completed"
