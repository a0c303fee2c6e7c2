"""Parties of a test call, assembled from the SIPp scenarios in parties/."""
from conftest import TENANT
from harness import RtpPeer, Sipp


def register(pbx, user, contact_port, password=None, domain=TENANT, scenario="register"):
    reg = Sipp(pbx.workdir, scenario, pbx.address, name=f"{scenario}-{user}",
               variables={"user": user, "domain": domain, "contact_port": contact_port, "expires": 300},
               user=user, password=password)
    return reg


def callee(pbx, user, hangup="caller", hold_ms=2500, name="callee", ssrc=0xB0B, port=None):
    media = RtpPeer(ssrc)
    party = Sipp(pbx.workdir, "callee", pbx.address, name=name, port=port, duration_ms=hold_ms,
                 variables={"user": user, "rtp_port": media.port, "outdir": pbx.workdir,
                            "party": name, "hangup": hangup})
    party.media = media
    return party


def caller(pbx, from_user, to_user, *, from_domain=TENANT, to_domain=TENANT, password=None,
           hangup="caller", hold_ms=2500, name="caller", ssrc=0xA11CE, port=None):
    media = RtpPeer(ssrc)
    party = Sipp(pbx.workdir, "caller", pbx.address, name=name, port=port, duration_ms=hold_ms,
                 variables={"from_user": from_user, "from_domain": from_domain, "to_user": to_user,
                            "to_domain": to_domain, "rtp_port": media.port, "outdir": pbx.workdir,
                            "party": name, "hangup": hangup},
                 user=from_user, password=password)
    party.media = media
    return party
