"""Calls in which a party types digits with SIP INFO (the SIPp scenario is written per test
from parties/caller_info.xml, one INFO request per key press)."""
import re

from vpbx.core import dtmf

import threading

from calls import callee, caller, read_port, register
from conftest import TENANT
from harness import PARTIES, PAUSE, RtpPeer, Sipp
from info_requests import GAP, INFO, RELAY, info_body  # noqa: F401  (RELAY re-exported)


def caller_info(pbx, from_user, to_user, presses, *, from_domain=TENANT, port=None, gap_ms=150,
                hold_ms=500, name="caller", typing_after_ms=0):
    """presses: [(key, content type[, expected answer, default 200])] typed typing_after_ms
    after the answer, gap_ms apart."""
    blocks = (GAP.format(gap=typing_after_ms) if typing_after_ms else "") + GAP.format(gap=gap_ms).join(
        INFO.format(n=n, cseq=10 + n, ctype=press[1], body=info_body(press[1], press[0]),
                    expect=press[2] if len(press) > 2 else 200)
        for n, press in enumerate(presses))
    path = pbx.workdir / f"{name}_info.xml"
    template = (PARTIES / "caller_info.xml").read_text()
    path.write_text(template.replace("<!-- INFO -->\n", blocks).replace("HOLD_MS", str(hold_ms)))
    media = RtpPeer(0xA11CE)
    party = Sipp(pbx.workdir, str(path.with_suffix("")), pbx.address, name=name, port=port,
                 variables={"from_user": from_user, "from_domain": from_domain, "to_user": to_user,
                            "to_domain": TENANT, "rtp_port": media.port, "outdir": pbx.workdir,
                            "party": name})
    party.media = media
    return party


def typed_call(pbx, presses, *, caller_ext="201", callee_ext="202", from_domain=TENANT, port=None,
               hold_ms=500, gap_ms=150, during=None):
    """A call caller_ext -> callee_ext in which the caller types `presses`; `during(caller)`
    runs while the call is still up. Returns when both parties have passed: (caller, callee)."""
    b = callee(pbx, callee_ext)
    register(pbx, callee_ext, b.port).passed()
    a = caller_info(pbx, caller_ext, callee_ext, presses, from_domain=from_domain, port=port,
                    hold_ms=hold_ms, gap_ms=gap_ms)
    if during:
        during(a)
    a.passed()
    b.passed()
    return a, b


def relayed_digits(party):
    """The keys the party received in INFO requests, in order."""
    keys = []
    for message in party.received("INFO "):
        headers, _, body = message.replace("\r\n", "\n").partition("\n\n")
        match = re.search(r"^Content-Type:\s*(\S+)", headers, re.M | re.I)
        assert match, message
        keys.append(dtmf.info_digit(match.group(1), body))
    return "".join(keys)


def rtp_typed_call(pbx, digits, *, typist="caller", caller_ext="201", callee_ext="202",
                   from_domain=TENANT, port=None):
    """A call caller_ext -> callee_ext in which `typist` types `digits` as RFC 4733 events
    (a comma pauses) while the other party sends audio. -> (typist's peer, listener's peer)."""
    typing = len(digits.replace(",", "")) * 0.28 + digits.count(",") * PAUSE
    b = callee(pbx, callee_ext, hold_ms=0)
    register(pbx, callee_ext, b.port).passed()
    a = caller(pbx, caller_ext, callee_ext, from_domain=from_domain, port=port,
               hold_ms=int(1500 + 1000 * typing))
    dest = {"caller": read_port(pbx.workdir, a.name), "callee": read_port(pbx.workdir, b.name)}
    typist_peer, listener_peer = (a.media, b.media) if typist == "caller" else (b.media, a.media)
    listener = "callee" if typist == "caller" else "caller"
    audio = threading.Thread(target=listener_peer.exchange,
                             args=(dest[listener], int((typing + 0.5) / 0.02)))
    audio.start()
    typist_peer.dtmf(dest[typist], digits)
    audio.join()
    a.passed()
    b.passed()
    return typist_peer, listener_peer


def type_over_audio(typist, typist_dest, listener, listener_dest, digits, packets=60):
    """The typist's RtpPeer types `digits` as RFC 4733 events while the listener's sends
    `packets` of audio (rtpengine reports digits only while media flows both ways)."""
    audio = threading.Thread(target=listener.exchange, args=(listener_dest, packets))
    audio.start()
    typist.dtmf(typist_dest, digits)
    audio.join()


def completed_codes(pbx, *fields):
    """The completed-code events on the PBX event stream, as tuples of `fields`."""
    return [tuple(e[f] for f in fields) for _, e in pbx.calls.events() if e["type"] == "code"]
