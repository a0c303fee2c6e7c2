"""A node whose rtpengine is gone (SIGKILL), with the real daemons: a new call is refused
with 503, never connected with its media unanchored; once `up` has started rtpengine again,
calls are anchored again, and the calls that were up at the kill get their media back on
the same ports (rtpengine restores its sessions from its own Redis database), a transferred
call too, and a call that rang at the kill and is answered after the restart is anchored;
feature codes still work (the first one is heard by the other party)."""
import os
import re
import signal
import time

import pytest

from calls import callee, caller, probe, read_port, register, talk, client_on_trunk
from conftest import PASSWORD
from dtmf_calls import completed_codes, type_over_audio
from harness import RtpPeer, Sipp, exchange_media, wait_for
from transfer_calls import target, transferring_call, who_hears

from vpbx.tooling import stack

STRANGER = "127.0.0.7"


def test_no_call_is_connected_unanchored(pbx):
    b = callee(pbx, "201")
    register(pbx, "201", b.port).passed()
    kill_rtpengine(pbx)
    try:
        start = time.monotonic()
        answer = probe(pbx, "202", "201")
        took = time.monotonic() - start
        assert answer.startswith("503 Service Unavailable - media relay"), answer
        assert b.received("INVITE ") == []                  # B never rang
        print(f"503 after {took:.2f} s")
    finally:
        stack.up(pbx.cfg, say=lambda _: None)               # brings back the missing daemon
    # Anchored again: a call through the new rtpengine, audio both ways.
    a = caller(pbx, "200", "201", password=PASSWORD)
    read_port(pbx.workdir, a.name)
    talk(pbx, a, b)


@pytest.mark.parametrize("trunk_caller", [False, True], ids=["extension", "trunk"])
def test_a_call_in_progress_gets_its_media_back(pbx, trunk_caller):
    """Audio both ways, rtpengine SIGKILLed (silence both ways), `up`: the restarted rtpengine
    has the call again, on the ports both parties were given, and they hear each other; the
    caller's BYE then ends it in rtpengine and in rtpengine's Redis database (the fixture's
    leak check)."""
    b = callee(pbx, "201")
    register(pbx, "201", b.port).passed()
    if trunk_caller:
        a = client_on_trunk(pbx, "201", hold_ms=8000)
    else:
        a = caller(pbx, "200", "201", password=PASSWORD, hold_ms=8000)
    a_dest, b_dest = read_port(pbx.workdir, a.name), read_port(pbx.workdir, b.name)
    [callid] = pbx.cfg.ng().calls()
    assert heard(a, a_dest, b, b_dest) == (True, True)
    assert pbx.rtpe_redis.exists(callid), "the session in rtpengine's Redis database"
    kill_rtpengine(pbx)
    try:
        assert heard(a, a_dest, b, b_dest) == (False, False)     # the gap
    finally:
        start = time.monotonic()
        stack.up(pbx.cfg, say=lambda _: None)
        print(f"rtpengine answering again {time.monotonic() - start:.2f} s after `up` began")
    assert pbx.cfg.ng().calls() == [callid]
    assert heard(a, a_dest, b, b_dest) == (True, True)
    a.passed()                                      # A's BYE, relayed: B got it and answered
    b.passed()
    assert len(b.received("INVITE ")) == 1 and a.received("INVITE ") == []    # no re-INVITE
    assert pbx.cfg.ng().calls() == [] and list(pbx.rtpe_redis.scan_iter()) == []


def test_feature_codes_after_a_restart(pbx_transfer):
    """rtpengine still reports the digits of a restored call: codes are collected. The guard
    that keeps a code from the other party (`block DTMF` with its `*` trigger) is not in
    rtpengine's store, so the first code after the restart is heard by the other party; the
    proxy arms the guard again after each code, so the next one is held back."""
    pbx = pbx_transfer
    b = callee(pbx, "202", hold_ms=0)
    register(pbx, "202", b.port).passed()
    a = caller(pbx, "201", "202", hold_ms=9000)
    a_dest, b_dest = read_port(pbx.workdir, a.name), read_port(pbx.workdir, b.name)
    kill_rtpengine(pbx)
    stack.up(pbx.cfg, say=lambda _: None)
    assert heard(a, a_dest, b, b_dest) == (True, True)
    for n, leaked in ((1, ["*", "1", "0", "0"]), (2, [])):
        b.media.events.clear()
        type_over_audio(a.media, a_dest, b.media, b_dest, "*100")
        assert completed_codes(pbx, "party", "code", "source") == [("caller", "*100", "rtp")] * n
        assert b.media.events == leaked
        time.sleep(0.5)                         # the guard is armed again 0.3 s after a code
    a.passed()
    b.passed()


def test_a_restored_call_still_takes_media_only_from_its_parties(pbx_transfer):
    """strict-source is restored with the session: after the restart a stranger who sends
    RFC 4733 events to the employee's port first gets nothing reported and nothing through;
    the employee's own code counts."""
    pbx = pbx_transfer
    b = callee(pbx, "202", hold_ms=0)
    register(pbx, "202", b.port).passed()
    a = caller(pbx, "201", "202", hold_ms=14000)
    a_dest, b_dest = read_port(pbx.workdir, a.name), read_port(pbx.workdir, b.name)
    # rtpengine learns where A sends from until 3-4 s after the last signalling, then
    # holds to that address (test_control_plane.py).
    a.media.exchange(a_dest, 250)
    kill_rtpengine(pbx)
    stack.up(pbx.cfg, say=lambda _: None)
    intruder = RtpPeer(0xBAD, ip=STRANGER)
    try:
        type_over_audio(intruder, a_dest, b.media, b_dest, "*202#")
        assert completed_codes(pbx, "code") == []
        type_over_audio(a.media, a_dest, b.media, b_dest, "*100")
    finally:
        intruder.close()
    a.passed()
    b.passed()
    assert completed_codes(pbx, "code", "source") == [("*100", "rtp")]
    assert 0xBAD not in b.media.received, "the stranger's packets reached B"


def test_a_transferred_call_gets_its_media_back(pbx_transfer):
    """After an attended transfer C and B are parties the proxy linked inside rtpengine (no
    SIP tags of theirs): restored too; B's BYE ends the call everywhere (call-id delete)."""
    pbx = pbx_transfer
    b = target(pbx, "100", ring_ms=200, hold_ms=9000)
    a, c = transferring_call(pbx, "*100", hold_ms=3000)
    c_dest = read_port(pbx.workdir, c.name)
    a.passed()                                  # A hangs up after talking to B
    wait_for(lambda: any(e.get("kind") == "completed" for _, e in pbx.calls.events()),
             what="the transfer completed")
    bc = {"B": (b, read_port(pbx.workdir, b.name)), "C": (c, c_dest)}
    assert who_hears(bc) == {"B": {"C"}, "C": {"B"}}
    kill_rtpengine(pbx)
    stack.up(pbx.cfg, say=lambda _: None)
    assert who_hears(bc) == {"B": {"C"}, "C": {"B"}}
    b.passed()
    c.passed()
    assert len(c.received("INVITE ")) == 1                  # C never got a re-INVITE


RING_MS = 6000


def test_a_call_ringing_at_the_kill_is_answered_through_the_restarted_rtpengine(pbx):
    """The offer, kept in rtpengine's database, is restored: B's 200 after the restart is
    answered through it, and both hear each other through rtpengine."""
    media = RtpPeer(0xB0B)
    b = Sipp(pbx.workdir, "callee_late", pbx.address, name="callee", duration_ms=RING_MS,
             variables={"user": "201", "rtp_port": media.port, "outdir": pbx.workdir,
                        "party": "callee"})
    b.media = media
    register(pbx, "201", b.port).passed()
    a = caller(pbx, "200", "201", password=PASSWORD, hold_ms=3000)
    b_dest = read_port(pbx.workdir, b.name)             # B rings
    rings = time.monotonic()
    kill_rtpengine(pbx)
    stack.up(pbx.cfg, say=lambda _: None)
    assert time.monotonic() - rings < RING_MS / 1000 - 1, "B answered before the restart"
    a_dest = read_port(pbx.workdir, a.name)             # answered
    assert {a_dest, b_dest}.isdisjoint({a.media.port, b.media.port}), "anchored in rtpengine"
    assert heard(a, a_dest, b, b_dest) == (True, True)
    a.passed()
    b.passed()


@pytest.mark.parametrize("trunk_caller", [False, True], ids=["extension", "trunk"])
def test_a_call_answered_while_rtpengine_is_gone_is_ended_never_unanchored(pbx, trunk_caller):
    """B answers while rtpengine is gone: tm cannot hold a 200 back, so it reaches A with a
    media description that sends nothing anywhere (never B's own address), and the proxy
    ends the call both ways half a second later. Once rtpengine is back, the offer it
    restored from its store is deleted too (the fixture's leak check)."""
    media = RtpPeer(0xB0B)
    b = Sipp(pbx.workdir, "callee_late", pbx.address, name="callee", duration_ms=1500,
             variables={"user": "201", "rtp_port": media.port, "outdir": pbx.workdir,
                        "party": "callee"})
    register(pbx, "201", b.port).passed()
    if trunk_caller:
        a, a_user = client_on_trunk(pbx, "201", hangup="callee"), "+4930123456"
    else:
        a, a_user = caller(pbx, "200", "201", password=PASSWORD, hangup="callee"), "200"
    read_port(pbx.workdir, b.name)                      # B rings
    kill_rtpengine(pbx)
    try:
        a.passed()          # 200, ACK, then the proxy's BYE, answered
        b.passed()          # ACK (A's), then the proxy's BYE
    finally:
        stack.up(pbx.cfg, say=lambda _: None)
    [ok] = a.received("SIP/2.0 200")
    body = ok.split("\n\n", 1)[1] if "\n\n" in ok else ok.split("\r\n\r\n", 1)[1]
    assert re.findall(r"^c=IN IP4 (\S+)", body, re.M) == ["0.0.0.0"], body
    assert "a=inactive" in body and "a=sendrecv" not in body
    [bye_a], [bye_b] = a.received("BYE "), b.received("BYE ")
    assert "From: <sip:201@" in bye_a and f"From: <sip:{a_user}@" in bye_b  # as B to A, A to B


def kill_rtpengine(pbx):
    os.killpg(stack.running(pbx.cfg)["rtpengine"], signal.SIGKILL)
    deadline = time.monotonic() + 5
    while "rtpengine" in stack.running(pbx.cfg) and time.monotonic() < deadline:
        time.sleep(0.05)


def heard(a, a_dest, b, b_dest):
    """Both parties send RTP to the ports their SDP gave them: (A heard B, B heard A); each
    hears nothing but the other."""
    a.media.flush()
    b.media.flush()
    exchange_media((a.media, a_dest), (b.media, b_dest))
    assert set(a.media.received) <= {b.media.ssrc} and set(b.media.received) <= {a.media.ssrc}
    return a.media.received[b.media.ssrc] >= 20, b.media.received[a.media.ssrc] >= 20
