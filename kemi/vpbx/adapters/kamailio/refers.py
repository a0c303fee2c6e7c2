"""Phones' REFERs: checked, relayed, or carried out here by the transfer engine."""
import dataclasses
import logging
import time

from vpbx.engine import transfers as engine_mod
from vpbx.core import refer, transfer
from vpbx.core.call import SIDES, Leg, Record, Side, Takeover, cseq_field, peer

log = logging.getLogger("vpbx.refers")


def trunk_address(call: Record, side: Side) -> str:
    """IP:PORT of the trunk that is `side` of the call."""
    if side == "caller":
        return call["caller_src"].partition(":")[2]
    return call["callee_target"].split("@", 1)[-1].split(";")[0]


class Refers:
    def __init__(self, store, engine, sip, uac, senders):
        self.store, self.engine, self.sip, self.uac, self.senders = store, engine, sip, uac, senders

    def refuse_over_cap(self):
        """A REFER the proxy would carry out while its tenant is over transfer_max_per_minute."""
        self.sip.add_reply_header("Retry-After: 60\r\n")
        self.sip.t_reply(503, "Service Unavailable - too many transfers")

    def checked(self, callid):
        """A phone's REFER: Refer-To checked and rewritten to the tenant's extension URI (the
        transferee then calls an address the proxy routes). False when answered here."""
        sip = self.sip
        call = self.store.call_load(callid)
        if not call:
            sip.sl_reply(481, "Call/Transaction Does Not Exist")
            return False
        side = sip.sender_side()
        if not self.senders.sent_by(call, side):
            self.senders.refuse()
            return False
        if transfer.engine_owns(call):
            sip.sl_reply(501, "Not Implemented - REFER in a call the PBX transferred")
            return False
        try:
            target = refer.parse_refer_to(sip.pv("$hdr(Refer-To)"))
        except refer.BadRefer as bad:
            sip.sl_reply(400, f"Bad Request - {bad}")
            return False
        tenant = call["tenant"]
        decided = refer.normalise(
            target, tenant, self.store.is_tenant,
            lambda user: self.store.ext_match(tenant, user)[0],
            call.get("transfer_external", ""),
            lambda host: sip.is_myself(f"sip:{host}"),
            # The transferee is the REFER's other party: a client on a trunk?
            trunk_client=call.get(f"{peer(side)}_role") == "trunk",
            trunk_to_trunk=call.get("transfer_trunk_to_trunk") == "on")
        if isinstance(decided, refer.Refused):
            sip.sl_reply(decided.code, decided.reason)
            return False
        if self.terminated(callid, call, side, target):
            return False
        if target.replaces:
            # Its transferee will INVITE with this Replaces: let it (and it alone), for a while.
            transferee = Leg(call, peer(side))
            self.store.call_update(target.replaces.callid, {"x_replace_by": refer.grant(
                refer.party(transferee.role, transferee.ext, transferee.src), time.time())})
        sip.replace_header("Refer-To", str(decided))
        return True

    def terminated(self, callid, call, side, target):
        """A REFER aimed at a trunk's party whose trunk takes no REFER ("terminate", the
        default): answered 202 here and carried out by the transfer engine (a blind
        transfer; NOTIFYs report to the phone). -> False when the REFER is to be relayed."""
        sip = self.sip
        other = peer(side)
        if Leg(call, other).role != "trunk":
            return False
        hostport = trunk_address(call, other)
        if self.store.trunk_refer(hostport) != "terminate":
            return False
        if sip.newtran() <= 0:
            return True
        state = transfer.state_of(call)
        if state.phase != transfer.TALKING:
            sip.t_reply(491, "Request Pending - a transfer is in progress")
            return True
        facts = None
        if target.replaces:
            event = self.join_event(callid, call, side, target.replaces)
            if event is None:
                return True
        else:
            event, facts = self.engine.transfer_event(call, state, side, target.user)
            event = dataclasses.replace(event, refer=True)
            if event.refused == engine_mod.TOO_MANY_TRANSFERS:
                self.refuse_over_cap()
                return True
        sip.t_reply(202, "Accepted")
        self.engine.handle(callid, event, call, facts=facts)
        return True

    def join_event(self, callid, call, side, replaces):
        """REFER with Replaces aimed at a trunk's party (attended transfer): the transfer
        event that joins the client with B, whom the phone talks to in the dialog Replaces
        names; None when answered here with an error."""
        sip = self.sip
        other = self.store.call_load(replaces.callid)
        b_side = next((s for s in SIDES if Leg(other, s).tag == replaces.to_tag
                       and Leg(other, peer(s)).tag == replaces.from_tag), None)
        if b_side is None:
            # What the phone would hear had the transferee sent the INVITE with Replaces.
            sip.t_reply(202, "Accepted")
            call["callid"] = callid
            cseq = int(call.get(cseq_field(side)) or 0) + 1
            self.store.call_update(callid, {cseq_field(side): str(cseq)})
            self.uac.notify(call, side, "481 Call/Transaction Does Not Exist", True, cseq)
            return None
        a, b = Leg(other, peer(b_side)), Leg(other, b_side)
        if replaces.callid == callid:
            sip.t_reply(400, "Bad Request - Replaces names the REFER's own call")
        elif other["tenant"] != call["tenant"]:
            sip.t_reply(403, "Forbidden - Replaces names a call of another tenant")
        elif a.ext != Leg(call, side).ext:
            sip.t_reply(403, "Forbidden - Replaces names a call of another party")
        elif transfer.engine_owns(other):
            sip.t_reply(491, "Request Pending - the other call is being transferred")
        elif b.role != "ext":
            # B gets a re-INVITE onto the client's media: never a trunk's party.
            sip.t_reply(501, "Not Implemented - attended REFER between two trunk calls")
        elif not b.sdp:
            sip.t_reply(501, "Not Implemented - the other call has no SDP of its target")
        elif not self.engine.transfer_allowed(call):
            self.refuse_over_cap()
        else:
            return transfer.Transfer(side, b.ext, leg_ext=Leg(call, side).ext, refer=True,
                                     join=Takeover(replaces.callid, b_side))
        return None
