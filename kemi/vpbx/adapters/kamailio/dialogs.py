"""In-dialog requests (loose-routed by their Route): relayed as a proxy does, or handed to the
legs, REFER and digit routes when the transfer engine looks after the call."""
import logging

from vpbx.core import route_mark, transfer
from vpbx.core.call import JoinRef, peer
from vpbx.adapters.kamailio.invites import RTPE_FLAGS
from vpbx.adapters.redis.resp import RespConnectionError
from vpbx.adapters.rtpengine.media import Media

log = logging.getLogger("vpbx.dialogs")

SIDE_AVP = "$avp(vpbx_side)"    # "caller" | "callee": who sent an in-dialog request
# Requests that may come in an early dialog (before the 2xx writes the record), without SDP.
EARLY_DIALOG = ("PRACK", "UPDATE", "INFO")


class Dialogs:
    def __init__(self, store, sip, senders, refers, legs, digits, mark, ng, backlog):
        self.store, self.sip, self.senders = store, sip, senders
        self.refers, self.legs, self.digits = refers, legs, digits
        self.mark = mark                    # route_mark.RouteMark
        self.ng = ng                        # rtpengine's ng client
        self.backlog = backlog              # backlog.Backlog: what waits for Redis

    def ours(self, callid):
        """Whether the request's Route carries this proxy's mark of the call: it is one of
        our calls, whatever Redis knows of it (core/route_mark.py)."""
        sip = self.sip
        caller_tag = sip.pv("$ft") if sip.sender_side() == "caller" else sip.pv("$tt")
        return sip.route_param_is(route_mark.PARAM, self.mark.of(callid, caller_tag))

    def route(self):
        sip = self.sip
        if not sip.loose_route():
            if sip.is_method("ACK"):        # ACK of a negative reply: tm handles it
                if sip.check_trans() > 0:
                    sip.relay()
                return
            sip.sl_reply(404, "Not Here")
            return
        callid = sip.pv("$ci")
        try:
            if sip.is_dtmf_info():
                self.digits.route_info(callid, sip.sender_side())
                return
            if sip.is_method("BYE"):
                if self.bye(callid):
                    return
            elif sip.is_method("ACK"):
                if sip.check_trans() == 0:      # the ACK of a 2xx the proxy sent itself
                    return
                if sip.has_sdp():               # late offer: the ACK carries the answer
                    sip.rtpengine_manage(RTPE_FLAGS)
            elif self.other_request(callid):
                return
        except RespConnectionError:
            self.without_state(callid)
            return
        sip.relay()

    def without_state(self, callid):
        """Redis cannot be reached: a request of one of our calls (its Route's mark) is
        relayed as a plain proxy would, checked and recorded by nothing; any other gets 481.
        A BYE still ends the call's media at once, and the rest of the call (its record, a
        leg a transfer had called) once Redis is back (backlog.py; docs/architecture.md,
        "When Redis fails")."""
        sip = self.sip
        if not self.ours(callid):
            self.no_such_dialog()
            return
        if sip.is_method("BYE"):
            # The whole rtpengine call: one the transfer engine looks after has more parties
            # than the dialog's two (a leg it called, music), which a delete by the BYE's
            # tags would leave behind.
            try:
                Media(self.ng, callid, self.backlog.media_lost).end()
            except Exception as exc:        # the BYE is relayed all the same
                log.warning("vpbx: BYE %s: rtpengine delete failed: %s", callid, exc)
            self.backlog.bye_relayed(callid, sip.sender_side())
        elif sip.has_sdp() and (sip.is_method("INVITE") or sip.is_method("UPDATE")):
            sip.rtpengine_manage(RTPE_FLAGS)
        sip.relay()

    def bye(self, callid):
        """-> True when routed here; False: an ordinary call's BYE, to relay."""
        sip = self.sip
        # Its tags must be the dialog's: the proxy ends the record and the media on it.
        record = self.store.call_end(callid, (sip.pv("$ft"), sip.pv("$tt")))
        if record == {}:
            if self.ours(callid) and not self.store.call_load(callid):
                # Our call with no record (its 2xx came while Redis was unreachable, or a
                # Redis restart lost it): it ends as an ordinary call.
                self.backlog.delete_media(callid)
                return False
            self.no_such_dialog()
            return True
        if record is None:                  # an ordinary call, deleted
            self.backlog.delete_media(callid)
            return False
        side = sip.sender_side()
        if not self.senders.sent_by(record, side):
            self.senders.refuse()
        elif record.get("x_join"):
            self.legs.route_taken_over(callid, JoinRef.parse(record["x_join"]))
        else:                               # the call has had a transfer
            self.legs.bye_to_engine(callid, transfer.Hangup(side), record)
        return True

    def other_request(self, callid):
        """re-INVITE, UPDATE, INFO, REFER, ... -> True when routed here, False to relay."""
        sip = self.sip
        side = sip.sender_side()
        method = sip.pv("$rm")
        if method == "REFER" and not self.refers.checked(callid):
            return True
        fields = {f"{side}_cseq": sip.pv("$cs")}
        sdp = sip.has_sdp()
        if sdp:
            fields[f"{side}_sdp"] = sip.pv("$rb")
        known, written = self.store.call_update_from(callid, side, sip.source(), fields)
        if known is None and (sdp or method not in EARLY_DIALOG) and not self.ours(callid):
            self.no_such_dialog()
            return True
        if not written:
            if not self.senders.sent_by(self.store.call_load(callid), side):
                self.senders.refuse()
                return True
            # Sent from where the party is registered now: its NAT binding moved.
            self.store.call_update(callid, {**fields, f"{side}_src": sip.source()})
        phase, a, c, join = known or ("", "", "", "")
        if join:
            self.legs.route_taken_over(callid, JoinRef.parse(join))
            return True
        if transfer.joined_by_engine(phase, a, c):
            self.legs.route_joined_request(callid, side)
            return True
        if sdp:
            sip.rtpengine_manage(RTPE_FLAGS)
            sip.set_pv(SIDE_AVP, side)
            sip.on_reply("ksr_onreply_in_dialog")
        return False

    def no_such_dialog(self):
        """An in-dialog request naming no call the proxy knows (none was answered with that
        Call-ID, or it has ended): 481, never relayed — else anyone could have the proxy send
        requests where their Request-URI says (an open relay), and one with SDP would hold
        rtpengine ports. A retransmission of a request the proxy relayed gets its answer again."""
        if self.sip.check_trans() == 0:
            return
        self.sip.sl_reply(481, "Call/Transaction Does Not Exist")

    def on_reply(self):
        """2xx to a re-INVITE/UPDATE with SDP: rtpengine answer, remember the new SDP."""
        status = self.sip.pv_int("$rs")
        if 200 <= status < 300 and self.sip.has_sdp():
            self.sip.rtpengine_manage(RTPE_FLAGS)
            self.store.call_update(self.sip.pv("$ci"),
                                   {f"{peer(self.sip.pv(SIDE_AVP))}_sdp": self.sip.pv("$rb")})
