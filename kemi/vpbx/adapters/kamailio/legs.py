"""The legs the transfer engine looks after: requests in dialogs it originated, took over or
joined, BYEs it decides, and the replies to the INVITEs it sent."""
import json
import logging

from vpbx.core import registration, transfer
from vpbx.core.call import SIDES, leg_callid, parse_leg_callid
from vpbx.adapters.kamailio.backlog import ANSWERED, FAILED, HANGUP
from vpbx.adapters.redis.resp import RespConnectionError

log = logging.getLogger("vpbx.legs")


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


class Legs:
    def __init__(self, store, engine, sip, uac, senders, digits, mark, backlog):
        self.store, self.engine, self.sip, self.uac = store, engine, sip, uac
        self.senders, self.digits = senders, digits
        self.mark = mark                    # route_mark.RouteMark: in our Contact to a leg
        self.backlog = backlog              # backlog.Backlog: what waits for Redis

    # ---- requests in calls the engine looks after -------------------------------------

    def bye_to_engine(self, callid, hangup, record=None):
        """A BYE in a call the transfer engine looks after: answered here, or relayed as
        usual when it ends the original dialog. -> whether it was relayed."""
        effects = self.engine.handle(callid, hangup, record)
        if any(isinstance(e, transfer.Relay) for e in effects):
            self.sip.relay()
            return True
        self.sip.sl_reply(200, "OK")
        return False

    def route_taken_over(self, callid, join):
        """A request in a dialog an attended REFER has taken over (join: its JoinRef): B's end
        is a leg of the client's call now; the phone's end is leaving (answered here, not
        relayed)."""
        sip = self.sip
        if sip.sender_side() != join.b_side:        # the phone's end
            if sip.is_method("BYE"):
                sip.sl_reply(200, "OK")
            elif sip.newtran() > 0:
                sip.t_reply(*((491, "Request Pending") if sip.is_method("INVITE") else (200, "OK")))
        elif not sip.is_method("BYE"):
            self.route_leg_request(join.callid, join.leg)
        elif self.bye_to_engine(join.callid, transfer.Hangup(join.leg)):
            # B left before the join: the dialog went back to the phone, and ends.
            self.store.call_end(callid)
            sip.rtpengine_delete()

    def route_leg_request(self, callid, leg):
        """An in-dialog request of a leg the proxy originated (no Route: sent to our Contact)."""
        sip = self.sip
        if sip.is_method("ACK"):
            sip.check_trans()
            return
        try:
            self._leg_request(callid, leg)
        except RespConnectionError:
            if not (sip.is_method("BYE")
                    and self.mark.marks_leg(sip.pv("$ru"), leg_callid(callid, leg))):
                raise                       # 503: not a BYE known to be ours
            # The leg hung up while Redis is unreachable: the proxy is that dialog's other
            # end, so the BYE is answered here; the engine ends what it ends once Redis is
            # back (backlog.py), as if the BYE came then.
            sip.sl_reply(200, "OK")
            self.backlog.leg_said(callid, leg, HANGUP)

    def _leg_request(self, callid, leg):
        sip = self.sip
        bye = sip.is_method("BYE")
        # A BYE goes to the engine, which needs the whole record: read it once.
        call = self.store.call_load(callid) if bye else self.store.leg_sender(callid, leg)
        if not call:
            sip.sl_reply(481, "Call/Transaction Does Not Exist")
            return
        if not self.senders.sent_by(call, leg):
            self.senders.refuse()
            return
        if bye:
            self.bye_to_engine(callid, transfer.Hangup(leg), call)
        elif sip.is_dtmf_info():
            self.digits.route_info(callid, leg)       # B may transfer the client on
        else:
            self.route_joined_request(callid, leg)

    def route_joined_request(self, callid, leg):
        """An in-dialog request (not BYE/ACK) of a leg whose partner the proxy has joined to
        it (or that waits on hold during a transfer): answered here, never relayed. An offer
        relinks the leg with its partner; on hold it gets 491 (the phone tries again)."""
        sip = self.sip
        if sip.newtran() <= 0:
            return
        if (sip.is_method("INVITE") or sip.is_method("UPDATE")) and sip.has_sdp():
            renegotiated = self.engine.renegotiate(callid, leg, sip.pv("$rb"))
            if renegotiated is None:
                sip.t_reply(491, "Request Pending")
                return
            answer, contact = renegotiated
            sip.add_reply_header(f"Contact: {contact}\r\n")
            sip.set_reply_body(answer, "application/sdp")
            sip.t_reply(200, "OK")
        elif sip.is_method("INVITE"):
            sip.t_reply(488, "Not Acceptable Here - offer expected")
        else:
            log.info("vpbx: %s %s: %s answered, not relayed (joined legs)", callid, leg, sip.pv("$rm"))
            sip.t_reply(200, "OK")

    # ---- the proxy's own INVITEs to legs: their replies ---------------------------------

    def local_request(self, evname):
        """tm's local-request event: an INVITE the proxy sends to a leg gets its reply routes."""
        callid = self.sip.pv("$ci")
        if evname == "tm:local-request" and self.sip.is_method("INVITE") and self.uac.sending_invite(callid):
            self.uac.restore_display(callid)
            self.sip.on_reply("ksr_onreply_leg")
            self.sip.on_failure("ksr_failure_leg")

    def leg_of_reply(self):
        """(call-id of the call, leg) of a reply to an INVITE the proxy sent: to a leg it
        called, to one it took over with an attended REFER, or to an original side (the
        client taken off hold); (None, None) when gone."""
        callid = self.sip.pv("$ci")
        return parse_leg_callid(callid) or self.store.reply_leg(callid, self.sip.pv("$tt")) or (None, None)

    def on_reply(self):
        """A provisional or 2xx reply of a leg the proxy called (tm ACKs a 2xx itself)."""
        sip = self.sip
        callid, leg = self.leg_of_reply()
        if leg is None:
            return
        status = sip.pv_int("$rs")
        if 180 <= status < 200:
            self.engine.handle(callid, transfer.Progress(leg))
        elif 200 <= status < 300 and leg in SIDES:
            # The client off hold: its answer may name another address; relink with it.
            if sip.has_sdp():
                self.engine.renegotiate(callid, leg, sip.pv("$rb"))
        elif 200 <= status < 300:
            tag, contact, body = sip.pvs("$tt", "$ct", "$rb")
            # Its requests must come from where its answer came from (Senders.sent_by).
            fields = {f"{leg}_tag": tag, f"{leg}_sdp": body, f"{leg}_src": sip.source(),
                      f"{leg}_contact": registration.parse_contact(contact).uri}
            try:
                self.engine.handle(callid, transfer.Answered(leg), fields=fields)
            except RespConnectionError:     # tm has ACKed it: the transfer goes on later
                self.backlog.leg_said(callid, leg, ANSWERED, json.dumps(fields))

    def on_failure(self):
        callid, leg = self.leg_of_reply()
        if leg is None:
            return
        status = self.sip.pv_int("$T_reply_code")
        if leg in SIDES:            # the client refused to come off hold: nothing to undo
            log.warning("vpbx: %s %s: re-INVITE off hold answered %s", callid, leg, status)
            return
        reason = failure_reason(status)
        try:
            self.engine.handle(callid, transfer.Failed(leg, reason))
        except RespConnectionError:
            self.backlog.leg_said(callid, leg, FAILED, reason)
