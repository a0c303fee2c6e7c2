"""Parties of a test call, assembled from the SIPp scenarios in parties/."""
import re

from conftest import TENANT
from harness import RtpPeer, Sipp, exchange_media, read_port


def register(pbx, user, contact_port, password=None, domain=TENANT, scenario="register", proxy=None,
             port=None):
    reg = Sipp(pbx.workdir, scenario, proxy or pbx.address, name=f"{scenario}-{user}", port=port,
               variables={"user": user, "domain": domain, "contact_port": contact_port, "expires": 300},
               user=user, password=password)
    return reg


def callee(pbx, user, hangup="caller", hold_ms=2500, name="callee", ssrc=0xB0B, port=None, proxy=None):
    media = RtpPeer(ssrc)
    # Only the party that hangs up stays -d ms; the other waits for the BYE at once
    # (a BYE arriving during SIPp's pause would be "unexpected").
    party = Sipp(pbx.workdir, "callee", proxy or pbx.address, name=name, port=port,
                 duration_ms=hold_ms if hangup == "callee" else 0,
                 variables={"user": user, "rtp_port": media.port, "outdir": pbx.workdir,
                            "party": name, "hangup": hangup})
    party.media = media
    return party


def caller(pbx, from_user, to_user, *, from_domain=TENANT, to_domain=TENANT, password=None,
           hangup="caller", hold_ms=2500, name="caller", ssrc=0xA11CE, port=None):
    media = RtpPeer(ssrc)
    party = Sipp(pbx.workdir, "caller", pbx.address, name=name, port=port,
                 duration_ms=hold_ms if hangup == "caller" else 0,
                 variables={"from_user": from_user, "from_domain": from_domain, "to_user": to_user,
                            "to_domain": to_domain, "rtp_port": media.port, "outdir": pbx.workdir,
                            "party": name, "hangup": hangup},
                 user=from_user, password=password)
    party.media = media
    return party


def client_on_trunk(pbx, to_user, **kwargs):
    """A client calling in through the tenant's trunk (+4930123456 from carrier.example, to
    the proxy's address), placed like `caller`."""
    return caller(pbx, "+4930123456", to_user, from_domain="carrier.example",
                  to_domain=f"127.0.0.1:{pbx.cfg.sip_port}", port=pbx.trunk_port, **kwargs)


def probe(pbx, from_user, to_user, *, from_domain=TENANT, to_domain=TENANT, max_forwards=70,
          extra_header="X-Probe: 1", port=None, ip="127.0.0.1"):
    """Send one INVITE (from ip) that should be refused; return the final status line received."""
    party = Sipp(pbx.workdir, "probe", pbx.address, name=f"probe-{from_user}-{to_user}", port=port, ip=ip,
                 variables={"from_user": from_user, "from_domain": from_domain, "to_user": to_user,
                            "to_domain": to_domain, "max_forwards": max_forwards,
                            "extra_header": extra_header})
    party.passed()
    finals = re.findall(r"^SIP/2\.0 ([2-6]\d\d .*?)\r?$", party.messages(), re.M)
    return finals[-1]


def talk(pbx, a, b):
    """Both parties of an answered call exchange RTP through rtpengine; each must receive
    the other's packets and nothing else. Returns when both SIPp parties have passed."""
    a_dest, b_dest = read_port(pbx.workdir, a.name), read_port(pbx.workdir, b.name)
    assert {a_dest, b_dest}.isdisjoint({a.media.port, b.media.port}), "media must be anchored in rtpengine"
    exchange_media((a.media, a_dest), (b.media, b_dest))
    a.passed()
    b.passed()
    assert a.media.received[b.media.ssrc] >= 20, f"{a.name} heard {dict(a.media.received)}"
    assert b.media.received[a.media.ssrc] >= 20, f"{b.name} heard {dict(b.media.received)}"
    assert set(a.media.received) == {b.media.ssrc} and set(b.media.received) == {a.media.ssrc}
