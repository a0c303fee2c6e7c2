"""The call record as the pure core reads it: sides and legs, one leg's fields as a `Leg`,
the join reference of a dialog an attended REFER took over. The record itself is a flat
hash (docs/redis-keys.md): `<leg>_<field>` per leg, `rtp_<leg>` its rtpengine party tag,
`x_<field>` the transfer engine's state.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from collections.abc import Mapping

Side = Literal["caller", "callee"]
SIDES: tuple[Side, Side] = ("caller", "callee")     # the two ends of the dialog the proxy relays
Record = Mapping[str, str]


def peer(side: str) -> Side:
    """The other end of the original dialog."""
    return "callee" if side == "caller" else "caller"


def is_side(leg: str) -> bool:
    return leg in SIDES


def is_originated(leg: str) -> bool:
    """A leg the proxy called or took over: leg1, leg2, ..."""
    return leg.startswith("leg") and leg[3:].isdigit()


def leg_of_tag(tag: str) -> str | None:
    """The leg an rtpengine party tag belongs to when the proxy made it ("leg2.9f3a…"), else
    None (the original sides' tags are their SIP tags)."""
    leg, dot, _ = tag.partition(".")
    return leg if dot and is_originated(leg) else None


def legs_of(record: Record) -> list[str]:
    """Every leg the call has had: the original sides and the originated legs."""
    return [*SIDES, *(f"leg{n}" for n in range(1, int(record.get("x_legs") or 0) + 1))]


def cseq_field(leg: str) -> str:
    """The record field holding the CSeq the proxy continues from when it speaks to `leg`:
    an original side is spoken to as its peer, an originated leg as the proxy's own UAC."""
    return f"{peer(leg)}_cseq" if is_side(leg) else f"{leg}_cseq"


@dataclass(frozen=True)
class Takeover:
    """The dialog a REFER with Replaces names, and B's side in it: B's end is taken over as a
    leg of the REFER's call."""
    callid: str
    b_side: Side


@dataclass(frozen=True)
class JoinRef:
    """x_join of a dialog an attended REFER took over: B's end is `leg` of call `callid` now."""
    callid: str
    leg: str
    b_side: Side

    @classmethod
    def parse(cls, text: str | None) -> JoinRef | None:
        if not text:
            return None
        callid, leg, b_side = text.split()
        return cls(callid, leg, "caller" if b_side == "caller" else "callee")

    def __str__(self) -> str:
        return f"{self.callid} {self.leg} {self.b_side}"


class Leg:
    """One leg's fields of a call record, read by name ("" when absent): `Leg(call, "leg1").sdp`
    is `call["leg1_sdp"]`; `key("sdp")` names the field for a write."""

    def __init__(self, record: Record, name: str):
        self.record, self.name = record, name

    def key(self, field: str) -> str:
        return f"{self.name}_{field}"

    def get(self, field: str) -> str:
        return self.record.get(self.key(field)) or ""

    @property
    def role(self) -> str:
        """What it is: "ext" or "trunk"."""
        return self.get("role")

    @property
    def ext(self) -> str:
        """Its extension ("" for a trunk's party)."""
        return self.get("ext")

    @property
    def src(self) -> str:
        """Where its requests come from: proto:ip:port."""
        return self.get("src")

    @property
    def socket(self) -> str:
        """The proxy's socket towards it."""
        return self.get("socket")

    @property
    def tag(self) -> str:
        """Its own SIP tag."""
        return self.get("tag")

    @property
    def uri(self) -> str:
        """Its URI in the dialog."""
        return self.get("uri")

    @property
    def contact(self) -> str:
        """Its Contact."""
        return self.get("contact")

    @property
    def sdp(self) -> str:
        """Its last SDP."""
        return self.get("sdp")

    @property
    def callid(self) -> str:
        """An originated leg's own dialog."""
        return self.get("callid")

    @property
    def release(self) -> str:
        """A taken-over end: the phone's side, hung up once joined."""
        return self.get("release")

    @property
    def held(self) -> str:
        """Set ("1") while the phone that put it on hold has not resumed it."""
        return self.get("held")

    @property
    def rtp(self) -> str:
        """The leg's rtpengine party tag."""
        return self.record.get(f"rtp_{self.name}") or ""


LEG_PREFIX = "vpbx-"


def leg_callid(callid: str, leg: str) -> str:
    """The Call-ID of a leg the proxy originates: names the call and the leg, so that any
    node can route the leg's requests and replies without a lookup."""
    return f"{LEG_PREFIX}{leg}-{callid}"


def parse_leg_callid(value: str) -> tuple[str, str] | None:
    """-> (call-id of the call, leg) or None for a Call-ID the proxy did not make."""
    if not value.startswith(LEG_PREFIX):
        return None
    leg, sep, callid = value[len(LEG_PREFIX):].partition("-")
    return (callid, leg) if sep and is_originated(leg) and callid else None
