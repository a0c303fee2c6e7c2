"""Parties of a transfer test: A (an extension typing the code with SIP INFO), C (the other
party of A's call) and B (the transfer target, parties/target.xml)."""
import threading

from calls import callee, caller, register
from dtmf_calls import RELAY, caller_info
from harness import PARTIES, RtpPeer, Sipp, read_port


# B's SDP (its answer, or its offer in a re-INVITE).
ANSWER = """Content-Type: application/sdp
Content-Length: [len]

v=0
o=- 3 4 IN IP4 [local_ip]
s=-
c=IN IP4 [media_ip]
t=0 0
m=audio [$rtp_port] RTP/AVP 0 101
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=sendrecv
"""

REINVITE = """  <pause milliseconds="{wait}" />
  <send retrans="500">
    <![CDATA[
INVITE [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
From:[$to_hdr];tag=[pid]t[call_number]
To:[$from_hdr]
Call-ID: [call_id]
[routes]
CSeq: 1 INVITE
Contact: <sip:[$user]@[local_ip]:[local_port]>
Max-Forwards: 70
""" + ANSWER + """
    ]]>
  </send>
  <recv response="100" optional="true" />
  <recv response="200">
    <action>
      <ereg regexp="m=audio ([0-9]+)" search_in="body" check_it="true" assign_to="m2,rport2" />
      <exec command="echo [$rport2] > [$outdir]/[$party].rport2" />
    </action>
  </recv>
  <send>
    <![CDATA[
ACK [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
From:[$to_hdr];tag=[pid]t[call_number]
To:[$from_hdr]
Call-ID: [call_id]
[routes]
CSeq: 1 ACK
Max-Forwards: 70
Content-Length: 0

    ]]>
  </send>
  <Reference variables="m2" />
"""


def reinvited_xml(status="200 OK", port_file="rport2", expect=(), answer=ANSWER):
    """SIPp XML: the party waits for a re-INVITE whose body has each `expect` text, writes
    the media port offered to outdir/NAME.<port_file>, answers `status` (a 2xx with the SDP
    `answer`) and takes the ACK. (B moved onto the client's media by an attended REFER; the
    client taken off hold.)"""
    checks = "".join(f'      <ereg regexp="{text}" search_in="body" check_it="true" '
                     f'assign_to="e{n}" />\n' for n, text in enumerate(expect))
    body = answer if status.startswith("2") else "Content-Length: 0\n"
    used = ",".join(["m2", *(f"e{n}" for n in range(len(expect)))])
    return f"""  <recv request="INVITE">
    <action>
{checks}      <ereg regexp="m=audio ([0-9]+)" search_in="body" check_it="true" assign_to="m2,port" />
      <exec command="echo [$port] > [$outdir]/[$party].{port_file}" />
    </action>
  </recv>
  <send>
    <![CDATA[
SIP/2.0 {status}
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:[$user]@[local_ip]:[local_port]>
{body}
    ]]>
  </send>
  <recv request="ACK" />
  <Reference variables="{used}" />
"""


def target(pbx, ext, *, ring_ms=200, hold_ms=8000, name="target", ssrc=0xB, busy=False,
           port=None, reinvite_after_ms=None, reinvited=None):
    """B: registered as `ext`, rings ring_ms, talks until a BYE or hold_ms after answering
    (or, busy, answers 486 after ringing). With `port` (a trunk's), B is not registered.
    With reinvite_after_ms, B sends a session-refresh re-INVITE that long after answering
    (the media port of its answer goes to outdir/NAME.rport2). With `reinvited` (a status
    line, "200 OK", "488 Not Acceptable Here"), B waits for a re-INVITE after answering and
    answers it so, then waits hold_ms for a BYE."""
    media = RtpPeer(ssrc)
    path = pbx.workdir / f"{name}.xml"
    template = PARTIES / ("target_busy.xml" if busy else "target.xml")
    reinvite = REINVITE.format(wait=reinvite_after_ms) if reinvite_after_ms is not None else ""
    if reinvited:
        reinvite = reinvited_xml(reinvited)
    path.write_text(template.read_text().replace("RING_MS", str(ring_ms))
                    .replace("HOLD_MS", str(hold_ms)).replace("<!-- REINVITE -->\n", reinvite))
    party = Sipp(pbx.workdir, str(path.with_suffix("")), pbx.address, name=name, port=port,
                 variables={"user": ext, "rtp_port": media.port, "outdir": pbx.workdir,
                            "party": name})
    party.media = media
    if port is None:
        register(pbx, ext, party.port).passed()
    return party


def transferring_call(pbx, code, *, a_ext="201", c_ext="202", hold_ms=2500, gap_ms=150,
                      c_hangs_up_ms=None, typing_after_ms=0):
    """A (a_ext) calls C (c_ext), types `code` with INFO typing_after_ms after the answer,
    stays hold_ms, hangs up.
    -> (A, C); C waits for the BYE the proxy sends when the call ends, or hangs up itself
    c_hangs_up_ms after answering."""
    if c_hangs_up_ms is None:
        c = callee(pbx, c_ext, ssrc=0xC)
    else:
        c = callee(pbx, c_ext, ssrc=0xC, hangup="callee", hold_ms=c_hangs_up_ms)
    register(pbx, c_ext, c.port).passed()
    a = caller_info(pbx, a_ext, c_ext, [(key, RELAY) for key in code], hold_ms=hold_ms,
                    gap_ms=gap_ms, typing_after_ms=typing_after_ms)
    a.media.ssrc = 0xA
    return a, c


# The client C is behind a trunk on either side of its call with the employee A: it calls
# in through the tenant's trunk (trunk_caller, the usual case), or A called its number out
# through the outbound trunk (trunk_callee). Tests where that matters run with both.
TRUNK_SIDES = ["trunk_caller", "trunk_callee"]
CLIENT = {"trunk_caller": "+4930123456", "trunk_callee": "004930123456"}    # C's number


def trunk_port(pbx, trunk):
    """The port of the trunk C is behind."""
    return pbx.trunk_port if trunk == "trunk_caller" else pbx.outbound_port


def trunk_client_call(pbx, trunk, a_ext="202", *, a_hold_ms):
    """A (extension a_ext) and the client C behind a trunk (TRUNK_SIDES) in a call; A hangs
    up a_hold_ms after the answer, C waits for the BYE (from the proxy after a transfer).
    -> (A, C, {"A": A's media port, "C": C's})."""
    number = CLIENT[trunk]
    if trunk == "trunk_caller":
        a = callee(pbx, a_ext, hangup="callee", hold_ms=a_hold_ms, ssrc=0xA)
        register(pbx, a_ext, a.port).passed()
        c = caller(pbx, number, a_ext, from_domain="carrier.example", port=pbx.trunk_port,
                   hangup="callee", ssrc=0xC)
    else:
        c = callee(pbx, number, port=pbx.outbound_port, ssrc=0xC)
        a = caller(pbx, a_ext, number, hold_ms=a_hold_ms, ssrc=0xA)
    return a, c, {"A": read_port(pbx.workdir, a.name), "C": read_port(pbx.workdir, c.name)}


def written_party(pbx, xml, name, variables, *, ssrc, port=None):
    """A SIPp party from scenario text the test wrote (a template filled in), with media."""
    path = pbx.workdir / f"{name}.xml"
    path.write_text(xml)
    media = RtpPeer(ssrc)
    party = Sipp(pbx.workdir, str(path.with_suffix("")), pbx.address, name=name, port=port,
                 variables={**variables, "rtp_port": media.port, "outdir": pbx.workdir,
                            "party": name})
    party.media = media
    return party


def unanswering_target(pbx, ext, scenario, name="target"):
    """B that never answers: parties/callee_ringing.xml (rings until cancelled) or
    callee_busy.xml (486)."""
    variables = {"user": ext} if scenario == "callee_ringing" else {}
    party = Sipp(pbx.workdir, scenario, pbx.address, name=name, variables=variables)
    register(pbx, ext, party.port).passed()
    return party


NAMES = {0xA: "A", 0xB: "B", 0xC: "C", 0xD: "D"}


def who_hears(parties, seconds=1.0):
    """parties: {name: (sipp party, media port to send to)} -> {name: set of senders heard}."""
    for party, _ in parties.values():
        party.media.flush()
    threads = [threading.Thread(target=party.media.exchange, args=(dest, int(seconds / 0.02)))
               for party, dest in parties.values()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {name: {NAMES.get(ssrc, "media") for ssrc, n in party.media.received.items() if n >= 10}
            for name, (party, _) in parties.items()}


def header(message, name):
    for line in message.replace("\r\n", "\n").split("\n"):
        if line.lower().startswith(name.lower() + ":"):
            return line.split(":", 1)[1].strip()
    return None
