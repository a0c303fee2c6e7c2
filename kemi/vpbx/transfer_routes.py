"""SIP routing of what the transfer engine looks after: phones' REFERs (checked, relayed, or
carried out here), the legs the proxy originated or took over (their requests and replies),
and BYEs the engine decides. A mixin of proxy.Proxy: it uses the proxy's store, engine,
relay() and route_info_dtmf().
"""
import dataclasses
import time
import traceback

import KSR

from . import refer, registration, transfer
from . import engine as engine_mod, uac
from .sipmsg import has_sdp, is_dtmf_info, not_the_party, pv, pvs, sender_side, source
from .call import SIDES, Takeover, cseq_field, parse_leg_callid, peer


def trunk_address(call, side):
    """IP:PORT of the trunk that is `side` of the call."""
    if side == "caller":
        return call["caller_src"].partition(":")[2]
    return call["callee_target"].split("@", 1)[-1].split(";")[0]


def failure_reason(status):
    """A final error status of a called leg, as the transfer engine names it."""
    if status in (486, 600):
        return "busy"
    if status in (403, 603):
        return "rejected"
    if status == 487:
        return "cancelled"
    if status in (408,) or status < 300:        # tm's own timeout has no reply (code 408)
        return "no_answer"
    return "unavailable"


def refuse_over_cap():
    """A REFER the proxy would carry out while its tenant is over transfer_max_per_minute."""
    KSR.hdr.append_to_reply("Retry-After: 60\r\n")
    KSR.tm.t_reply(503, "Service Unavailable - too many transfers")


class TransferRoutes:
    # ---- phones' REFERs -------------------------------------------------------

    def checked_refer(self, callid):
        """A phone's REFER: Refer-To checked and rewritten to the tenant's extension URI (the
        transferee then calls an address the proxy routes). False when answered here."""
        call = self.store.call_load(callid)
        if not call:
            KSR.sl.sl_send_reply(481, "Call/Transaction Does Not Exist")
            return False
        if not self.sent_by(call, sender_side()):
            not_the_party()
            return False
        if transfer.engine_owns(call):
            KSR.sl.sl_send_reply(501, "Not Implemented - REFER in a call the PBX transferred")
            return False
        try:
            target = refer.parse_refer_to(pv("$hdr(Refer-To)"))
        except refer.BadRefer as bad:
            KSR.sl.sl_send_reply(400, f"Bad Request - {bad}")
            return False
        tenant = call["tenant"]
        decided = refer.normalise(
            target, tenant, self.store.is_tenant,
            lambda user: self.store.ext_match(tenant, user)[0],
            call.get("transfer_external", ""),
            lambda host: KSR.is_myself(f"sip:{host}") > 0,
            # The transferee is the REFER's other party: a client on a trunk?
            trunk_client=call.get(f"{peer(sender_side())}_role") == "trunk",
            trunk_to_trunk=call.get("transfer_trunk_to_trunk") == "on")
        if isinstance(decided, refer.Refused):
            KSR.sl.sl_send_reply(decided.code, decided.reason)
            return False
        if self.refer_terminated(callid, call, target):
            return False
        if target.replaces:
            # Its transferee will INVITE with this Replaces: let it (and it alone), for a while.
            transferee = peer(sender_side())
            self.store.call_update(target.replaces.callid, {"x_replace_by": refer.grant(refer.party(
                call[f"{transferee}_role"], call.get(f"{transferee}_ext"), call[f"{transferee}_src"]),
                time.time())})
        KSR.hdr.remove("Refer-To")
        KSR.hdr.append(f"Refer-To: {decided}\r\n")
        return True

    def refer_terminated(self, callid, call, target):
        """A REFER aimed at a trunk's party whose trunk takes no REFER ("terminate", the
        default): answered 202 here and carried out by the transfer engine (a blind
        transfer; NOTIFYs report to the phone). -> False when the REFER is to be relayed."""
        side = sender_side()
        other = peer(side)
        if call.get(f"{other}_role") != "trunk":
            return False
        hostport = trunk_address(call, other)
        if self.store.trunk_refer(hostport) != "terminate":
            return False
        if KSR.tm.t_newtran() <= 0:
            return True
        state = transfer.state_of(call)
        if state.phase != transfer.TALKING:
            KSR.tm.t_reply(491, "Request Pending - a transfer is in progress")
            return True
        if target.replaces:
            event = self.join_event(callid, call, side, target.replaces)
            if event is None:
                return True
        else:
            event = dataclasses.replace(
                self.engine.transfer_event(call, state, side, target.user), refer=True)
            if event.refused == engine_mod.TOO_MANY_TRANSFERS:
                refuse_over_cap()
                return True
        KSR.tm.t_reply(202, "Accepted")
        self.engine.handle(callid, event, call)
        return True

    def join_event(self, callid, call, side, replaces):
        """REFER with Replaces aimed at a trunk's party (attended transfer): the transfer
        event that joins the client with B, whom the phone talks to in the dialog Replaces
        names; None when answered here with an error."""
        other = self.store.call_load(replaces.callid)
        b_side = next((s for s in SIDES if other.get(f"{s}_tag") == replaces.to_tag
                       and other.get(f"{peer(s)}_tag") == replaces.from_tag), None)
        if b_side is None:
            # What the phone would hear had the transferee sent the INVITE with Replaces.
            KSR.tm.t_reply(202, "Accepted")
            call["callid"] = callid
            cseq = int(call.get(cseq_field(side)) or 0) + 1
            self.store.call_update(callid, {cseq_field(side): str(cseq)})
            uac.notify(call, side, "481 Call/Transaction Does Not Exist", True, cseq)
            return None
        a_side = peer(b_side)
        if replaces.callid == callid:
            KSR.tm.t_reply(400, "Bad Request - Replaces names the REFER's own call")
        elif other["tenant"] != call["tenant"]:
            KSR.tm.t_reply(403, "Forbidden - Replaces names a call of another tenant")
        elif other.get(f"{a_side}_ext") != call.get(f"{side}_ext"):
            KSR.tm.t_reply(403, "Forbidden - Replaces names a call of another party")
        elif transfer.engine_owns(other):
            KSR.tm.t_reply(491, "Request Pending - the other call is being transferred")
        elif other.get(f"{b_side}_role") != "ext":
            # B gets a re-INVITE onto the client's media: never a trunk's party.
            KSR.tm.t_reply(501, "Not Implemented - attended REFER between two trunk calls")
        elif not other.get(f"{b_side}_sdp"):
            KSR.tm.t_reply(501, "Not Implemented - the other call has no SDP of its target")
        elif not self.engine.transfer_allowed(call):
            refuse_over_cap()
        else:
            return transfer.Transfer(side, other.get(f"{b_side}_ext", ""),
                                     leg_ext=call.get(f"{side}_ext", ""), refer=True,
                                     join=Takeover(replaces.callid, b_side))
        return None

    # ---- requests in calls the engine looks after ---------------------------------

    def bye_to_engine(self, callid, hangup, record=None):
        """A BYE in a call the transfer engine looks after: answered here, or relayed as
        usual when it ends the original dialog. -> whether it was relayed."""
        effects = self.engine.handle(callid, hangup, record)
        if any(isinstance(e, transfer.Relay) for e in effects):
            self.relay()
            return True
        KSR.sl.sl_send_reply(200, "OK")
        return False

    def route_taken_over(self, callid, join):
        """A request in a dialog an attended REFER has taken over (join: its JoinRef): B's end
        is a leg of the client's call now; the phone's end is leaving (answered here, not
        relayed)."""
        joined, leg = join.callid, join.leg
        if sender_side() != join.b_side:                 # the phone's end
            if KSR.is_BYE():
                KSR.sl.sl_send_reply(200, "OK")
            elif KSR.tm.t_newtran() > 0:
                KSR.tm.t_reply(*((491, "Request Pending") if KSR.is_INVITE() else (200, "OK")))
        elif not KSR.is_BYE():
            self.route_leg_request(joined, leg)
        elif self.bye_to_engine(joined, transfer.Hangup(leg)):
            # B left before the join: the dialog went back to the phone, and ends.
            self.store.call_end(callid)
            KSR.rtpengine.rtpengine_delete("")

    def route_leg_request(self, callid, leg):
        """An in-dialog request of a leg the proxy originated (no Route: sent to our Contact)."""
        if KSR.is_ACK():
            KSR.tm.t_check_trans()
            return
        call = self.store.leg_sender(callid, leg)
        if not call:
            KSR.sl.sl_send_reply(481, "Call/Transaction Does Not Exist")
            return
        if not self.sent_by(call, leg):
            not_the_party()
            return
        if KSR.is_BYE():
            self.bye_to_engine(callid, transfer.Hangup(leg))
        elif is_dtmf_info():
            self.route_info_dtmf(callid, leg)       # B may transfer the client on
        else:
            self.route_joined_request(callid, leg)

    def route_joined_request(self, callid, leg):
        """An in-dialog request (not BYE/ACK) of a leg whose partner the proxy has joined to
        it (or that waits on hold during a transfer): answered here, never relayed. An offer
        relinks the leg with its partner; on hold it gets 491 (the phone tries again)."""
        rc = KSR.tm.t_newtran()
        if rc <= 0:
            return
        if (KSR.is_INVITE() or KSR.is_UPDATE()) and has_sdp():
            renegotiated = self.engine.renegotiate(callid, leg, pv("$rb"))
            if renegotiated is None:
                KSR.tm.t_reply(491, "Request Pending")
                return
            answer, contact = renegotiated
            KSR.hdr.append_to_reply(f"Contact: {contact}\r\n")
            KSR.textops.set_reply_body(answer, "application/sdp")
            KSR.tm.t_reply(200, "OK")
        elif KSR.is_INVITE():
            KSR.tm.t_reply(488, "Not Acceptable Here - offer expected")
        else:
            KSR.info(f"vpbx: {callid} {leg}: {pv('$rm')} answered, not relayed (joined legs)\n")
            KSR.tm.t_reply(200, "OK")

    # ---- the proxy's own INVITEs to legs: their replies ---------------------------

    def ksr_tm_event(self, msg, evname):
        """tm's local-request event: an INVITE the proxy sends to a leg gets its reply routes."""
        try:
            if evname == "tm:local-request" and KSR.is_INVITE() and uac.sending_invite(pv("$ci")):
                uac.restore_display(pv("$ci"))
                KSR.tm.t_on_reply("ksr_onreply_leg")
                KSR.tm.t_on_failure("ksr_failure_leg")
        except Exception:
            KSR.err(f"vpbx: tm event: {traceback.format_exc()}")
        return 1

    def leg_of_reply(self):
        """(call-id of the call, leg) of a reply to an INVITE the proxy sent: to a leg it
        called, to one it took over with an attended REFER, or to an original side (the
        client taken off hold); (None, None) when gone."""
        callid = pv("$ci")
        return parse_leg_callid(callid) or self.store.reply_leg(callid, pv("$tt")) or (None, None)

    def ksr_onreply_leg(self, msg):
        """A provisional or 2xx reply of a leg the proxy called (tm ACKs a 2xx itself)."""
        try:
            callid, leg = self.leg_of_reply()
            if leg is None:
                return 1
            status = int(pv("$rs"))
            if 180 <= status < 200:
                self.engine.handle(callid, transfer.Progress(leg))
            elif 200 <= status < 300 and leg in SIDES:
                # The client off hold: its answer may name another address; relink with it.
                if has_sdp():
                    self.engine.renegotiate(callid, leg, pv("$rb"))
            elif 200 <= status < 300:
                tag, contact, body = pvs("$tt", "$ct", "$rb")
                # Its requests must come from where its answer came from (Proxy.sent_by).
                self.engine.handle(callid, transfer.Answered(leg), fields={
                    f"{leg}_tag": tag, f"{leg}_sdp": body, f"{leg}_src": source(),
                    f"{leg}_contact": registration.parse_contact(contact).uri})
        except Exception:
            KSR.err(f"vpbx: leg reply {pv('$ci')}: {traceback.format_exc()}")
        return 1

    def ksr_failure_leg(self, msg):
        try:
            callid, leg = self.leg_of_reply()
            if leg is None:
                return 1
            status = int(pv("$T_reply_code"))
            if leg in SIDES:            # the client refused to come off hold: nothing to undo
                KSR.warn(f"vpbx: {callid} {leg}: re-INVITE off hold answered {status}\n")
                return 1
            self.engine.handle(callid, transfer.Failed(leg, failure_reason(status)))
        except Exception:
            KSR.err(f"vpbx: leg failure {pv('$ci')}: {traceback.format_exc()}")
        return 1
