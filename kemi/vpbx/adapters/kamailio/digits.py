"""Feature-code digits from the wire: SIP INFO key presses, RFC 4733 events rtpengine reports,
and the timers of codes (codes.py applies them; the engine acts on completed codes)."""
import logging
import time

from vpbx.engine import codes
from vpbx.core import dtmf, transfer
from vpbx.core.call import JoinRef
from vpbx.adapters.rtpengine.media import Media

log = logging.getLogger("vpbx.digits")
REARM_DELAY = 0.3       # seconds from a code's end until its typist's RFC 4733 events flow again


class Digits:
    def __init__(self, store, engine, ng, sip, senders):
        self.store, self.engine, self.ng, self.sip, self.senders = store, engine, ng, sip, senders

    def after_code(self, callid, side, outcome):
        if isinstance(outcome, dtmf.Complete) and outcome.code.startswith("*"):
            self.engine.on_code(callid, side, outcome.code)

    def route_info(self, callid, side):
        """A key press in SIP INFO: part of a feature code (answered here, not relayed) or
        not (relayed). Answered statefully, so a retransmission is not a second digit."""
        rc = self.sip.newtran()
        if rc == 0:                 # a retransmission: tm has answered it again
            return
        if rc < 0:
            self.sip.reply_error()
            return
        self.info(callid, side)

    def info(self, callid, side):
        sip = self.sip
        ctype, body = sip.pvs("$cT", "$rb")
        try:
            key = dtmf.info_digit(ctype, body)
        except dtmf.BadDtmf as bad:
            call, side, _ = self.store.dtmf_load(callid, side)
            if call and (call.get("x_join") or codes.may_type_codes(call, side)):
                sip.t_reply(400, f"Bad Request - {bad}")
            else:
                sip.relay()
            return
        outcome, call, _ = codes.digit(self.store, callid, side, key, "info",
                                       sent_by=self.senders.sent_by)
        if outcome == codes.NOT_THE_PARTY:
            self.senders.refuse()
            return
        join = JoinRef.parse(call.get("x_join"))
        if join:                                # a dialog an attended REFER took over
            if side == join.b_side:
                self.info(join.callid, join.leg)
            else:
                sip.t_reply(200, "OK")
            return
        if outcome is None or isinstance(outcome, dtmf.Pass):
            if transfer.engine_owns(call):
                sip.t_reply(200, "OK")          # the peer is gone or on hold: not relayed
                return
            # The proxy may later speak in this dialog as this side: it must know its CSeq.
            self.store.call_update(callid, {f"{side}_cseq": sip.pv("$cs")})
            sip.relay()
        else:
            sip.t_reply(200, "OK")
            self.hold_back_rtp(callid, side, outcome)
            self.after_code(callid, side, outcome)

    def rtp_report(self):
        """A digit rtpengine detected in RFC 4733 events: {"callid", "source_tag", "event", ...}."""
        try:
            callid, tag, key = dtmf.report_digit(self.sip.pv("$mb"))
        except (UnicodeDecodeError, dtmf.BadDtmf):
            log.info("vpbx: ignored a datagram from %s that is no DTMF report", self.sip.source())
            return
        outcome, call, side = codes.digit(self.store, callid, None, key, "rtp", rtp_tag=tag)
        if outcome is not None:
            self.hold_back_rtp(callid, side, outcome)
            self.after_code(callid, side, outcome)

    def hold_back_rtp(self, callid, side, outcome):
        """After a code, the typist's events flow again (until its next `*`): not at once, as
        the last digit's trailing end packets are still under way."""
        if isinstance(outcome, (dtmf.Complete, dtmf.Discard)):
            self.store.schedule_rearm(callid, side, time.time() + REARM_DELAY)

    def rearm(self, callid, side):
        """The typist's DTMF guard again after a code: not while a code is typed, nor while a
        transfer keeps the party muted."""
        code, tag, phase = self.store.typing(callid, side)
        if tag and not code and phase in ("", transfer.TALKING):
            Media(self.ng, callid).guard(tag)

    def expire(self, callid, side):
        """A code's digit timeout."""
        ended = codes.expire(self.store, callid, side)
        if ended:
            self.hold_back_rtp(callid, side, ended[0])
            self.after_code(callid, side, ended[0])
