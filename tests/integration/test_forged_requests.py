"""In-dialog requests the proxy acts on (INFO digits, REFER, the BYEs and re-INVITEs of the
legs it joins) count only when they come from the address the dialog record holds for the
side they claim to be from, or from where that extension is registered now. The client knows
every identifier of its call; forging the employee's requests from another address gets 403
and changes nothing."""

import pytest

from calls import callee, caller, register, talk, client_on_trunk
from conftest import TENANT
from dtmf_calls import RELAY, caller_info, completed_codes, type_over_audio
from forged import SDP, STRANGER, Dialog, assert_not_relayed, send
from harness import read_port, sipp_port, wait_for
from transfer_calls import target, transferring_call, who_hears

REFUSED = "SIP/2.0 403 Forbidden - not sent by that party of the call"


def dialog_of(party):
    """The dialog of a callee's party, once it has answered."""
    def answered():
        invites, answers = party.received("INVITE "), party.sent("SIP/2.0 200")
        return invites and answers and Dialog(invites[0], answers[0])
    return wait_for(answered, what=f"{party.name} answering")


def test_forged_digits_and_refer_of_the_employee_are_refused(pbx_transfer):
    pbx = pbx_transfer
    c = callee(pbx, "202")
    register(pbx, "202", c.port).passed()
    a = caller_info(pbx, "201", "202", [(k, RELAY) for k in "*100"], gap_ms=400, hold_ms=2500)
    dialog = dialog_of(c)
    for n, key in enumerate("*202#"):
        status = send(pbx.cfg.sip_port, lambda src, n=n, key=key: dialog.request(
            "caller", "INFO", 100 + n, src, body=f"Signal={key}\r\nDuration=160", ctype=RELAY))
        assert status == REFUSED
    status = send(pbx.cfg.sip_port, lambda src: dialog.request(
        "caller", "REFER", 200, src, extra=f"Refer-To: <sip:100@{TENANT}>"))
    assert status == REFUSED
    a.passed()
    c.passed()
    assert completed_codes(pbx, "code") == [("*100",)]        # the employee's own code counts
    assert c.received("INFO ") == [] and c.received("REFER ") == []


def test_forged_requests_in_a_transferred_call_change_nothing(pbx_transfer):
    pbx = pbx_transfer
    b = target(pbx, "100", ring_ms=2500, hold_ms=10000)
    a, c = transferring_call(pbx, "*100", hold_ms=300)          # a blind transfer
    c_port = read_port(pbx.workdir, c.name)
    a.passed()
    wait_for(lambda: any(e.get("kind") == "completed" for _, e in pbx.calls.events()),
             timeout=10, what="the transfer completed")
    parties = {"B": (b, read_port(pbx.workdir, b.name)), "C": (c, c_port)}
    c_dialog, b_dialog = dialog_of(c), dialog_of(b)
    before = pbx.calls.call_load(c_dialog.callid)
    port = pbx.cfg.sip_port
    assert send(port, lambda src: c_dialog.request("callee", "BYE", 50, src)) == REFUSED
    assert send(port, lambda src: b_dialog.request("callee", "BYE", 50, src)) == REFUSED
    assert send(port, lambda src: c_dialog.request(
        "callee", "INVITE", 51, src, body=SDP.format(ip=STRANGER, port=40000))) == REFUSED
    assert send(port, lambda src: c_dialog.request(
        "callee", "INVITE", 52, src, body=SDP.format(ip=STRANGER, port=40000)),
        source=("127.0.0.1", 0)) == REFUSED                   # the proxy's host is no party
    assert pbx.calls.call_load(c_dialog.callid) == before
    assert who_hears(parties) == {"B": {"C"}, "C": {"B"}}
    assert b.received("BYE ") == [] and len(b.received("INVITE ")) == 1

    # The client's phone behind NAT gets a new public port: it registers from there, and its
    # BYE from there is its own.
    moved = sipp_port()
    register(pbx, "202", moved, port=moved).passed()
    assert send(port, lambda src: c_dialog.request("callee", "BYE", 53, src),
                source=("127.0.0.1", moved)).startswith("SIP/2.0 200")
    b.passed()                                      # the proxy ended B's leg
    c.stop()                                        # (C's own party never hung up)


def test_the_client_on_a_trunk_cannot_type_for_the_employee_it_called(pbx_transfer):
    """The other orientation: the client calls in through a trunk, the employee (201) answers.
    Forged key presses as the employee — from a stranger and from the trunk's own host — are
    refused and never reach the client; the employee's own RFC 4733 code counts."""
    pbx = pbx_transfer
    a = callee(pbx, "201", hold_ms=0)
    register(pbx, "201", a.port).passed()
    c = client_on_trunk(pbx, "201", hold_ms=4000)
    dialog = dialog_of(a)
    for n, (key, source) in enumerate(zip("*202#", [(STRANGER, 0), ("127.0.0.1", 0)] * 3)):
        assert send(pbx.cfg.sip_port, lambda src, n=n, key=key: dialog.request(
            "callee", "INFO", 100 + n, src, body=f"Signal={key}\r\nDuration=160", ctype=RELAY),
            source=source) == REFUSED
    a_dest, c_dest = read_port(pbx.workdir, a.name), read_port(pbx.workdir, c.name)
    type_over_audio(a.media, a_dest, c.media, c_dest, "*100")
    c.passed()
    a.passed()
    assert completed_codes(pbx, "code", "party") == [("*100", "callee")]
    assert c.received("INFO ") == []


@pytest.mark.parametrize("trunk_caller", [False, True], ids=["ext_to_ext", "trunk_to_ext"])
def test_a_bye_with_the_call_id_but_another_dialogs_tags_ends_nothing(pbx, trunk_caller):
    """The proxy ends a call's record and media on its BYE, so a BYE must be the dialog's: one
    with the Call-ID and a wrong tag (a fuzzer's, a confused phone's) gets 481 and is not
    relayed; the call goes on with audio both ways and ends with its own BYE."""
    b = callee(pbx, "202")
    register(pbx, "202", b.port).passed()
    if trunk_caller:
        a = client_on_trunk(pbx, "202", hold_ms=4000)
    else:
        a = caller(pbx, "201", "202", hold_ms=4000)
    dialog = dialog_of(b)
    for which in ("callee", "caller"):
        setattr(dialog, which, getattr(dialog, which).replace("tag=", "tag=x"))
        assert send(pbx.cfg.sip_port, lambda src: dialog.request("caller", "BYE", 90, src)) == \
            "SIP/2.0 481 Call/Transaction Does Not Exist"
    assert pbx.calls.call_load(dialog.callid), "the call's record"
    talk(pbx, a, b)
    assert len(b.received("BYE ")) == 1             # the caller's own


@pytest.mark.parametrize("method", ["INVITE", "BYE", "MESSAGE", "NOTIFY", "OPTIONS"])
def test_the_proxy_relays_no_request_of_a_dialog_it_does_not_know(pbx, method):
    """A stranger makes up a dialog (a to-tag, a Route to the proxy) to have the proxy send a
    request where the Request-URI says — a carrier gateway that trusts the PBX, say: 481,
    and the target gets nothing."""
    assert_not_relayed(pbx, method)


def test_a_strangers_cancel_for_a_call_ends_nothing(pbx):
    """A CANCEL no INVITE transaction here matches (forged with a call's identifiers, from
    another address than the caller's) gets 481; the call's media is not touched: both
    parties still hear each other. (tests/integration/test_kamailio_restart.py: the same for
    a call that rings.)"""
    b = callee(pbx, "202", hold_ms=5000, hangup="callee")
    register(pbx, "202", b.port).passed()
    a = caller(pbx, "201", "202", hangup="callee")
    dialog = dialog_of(b)
    read_port(pbx.workdir, a.name)
    status = send(pbx.cfg.sip_port, lambda src: dialog.request("caller", "CANCEL", 1, src))
    assert status == "SIP/2.0 481 Call/Transaction Does Not Exist"
    assert dialog.callid in pbx.cfg.ng().calls()
    talk(pbx, a, b)
    a.passed()
    b.passed()
