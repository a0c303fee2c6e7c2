"""Parties of a transfer test: A (an extension typing the code with SIP INFO), C (the other
party of A's call) and B (the transfer target, parties/target.xml)."""
from calls import callee, register
from dtmf_calls import RELAY, caller_info
from harness import PARTIES, RtpPeer, Sipp


def target(pbx, ext, *, ring_ms=200, hold_ms=8000, name="target", ssrc=0xB, busy=False,
           port=None):
    """B: registered as `ext`, rings ring_ms, talks until a BYE or hold_ms after answering
    (or, busy, answers 486 after ringing). With `port` (a trunk's), B is not registered."""
    media = RtpPeer(ssrc)
    path = pbx.workdir / f"{name}.xml"
    template = PARTIES / ("target_busy.xml" if busy else "target.xml")
    path.write_text(template.read_text().replace("RING_MS", str(ring_ms))
                    .replace("HOLD_MS", str(hold_ms)))
    party = Sipp(pbx.workdir, str(path.with_suffix("")), pbx.address, name=name, port=port,
                 variables={"user": ext, "rtp_port": media.port, "outdir": pbx.workdir,
                            "party": name})
    party.media = media
    if port is None:
        register(pbx, ext, party.port).passed()
    return party


def transferring_call(pbx, code, *, a_ext="201", c_ext="202", hold_ms=2500, gap_ms=150,
                      c_hangs_up_ms=None):
    """A (a_ext) calls C (c_ext), types `code` with INFO once answered, stays hold_ms, hangs up.
    -> (A, C); C waits for the BYE the proxy sends when the call ends, or hangs up itself
    c_hangs_up_ms after answering."""
    if c_hangs_up_ms is None:
        c = callee(pbx, c_ext, ssrc=0xC)
    else:
        c = callee(pbx, c_ext, ssrc=0xC, hangup="callee", hold_ms=c_hangs_up_ms)
    register(pbx, c_ext, c.port).passed()
    a = caller_info(pbx, a_ext, c_ext, [(key, RELAY) for key in code], hold_ms=hold_ms,
                    gap_ms=gap_ms)
    a.media.ssrc = 0xA
    return a, c


def unanswering_target(pbx, ext, scenario, name="target"):
    """B that never answers: parties/callee_ringing.xml (rings until cancelled) or
    callee_busy.xml (486)."""
    variables = {"user": ext} if scenario == "callee_ringing" else {}
    party = Sipp(pbx.workdir, scenario, pbx.address, name=name, variables=variables)
    register(pbx, ext, party.port).passed()
    return party
