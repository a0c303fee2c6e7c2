"""Kamailio's entry object (vpbx_kemi.mod_init returns it; wiring.py builds it): the KEMI
callbacks. The request route reads like a checklist — initial checks, CANCEL, in-dialog,
ACK, retransmissions, scanners, then REGISTER, INVITE, OPTIONS — each step handed to the
route object named for its concern. A route's exception is logged and answered here.
"""
import logging
import time

from vpbx.adapters.redis import resp
from vpbx.core import transfer
from vpbx.core.call import parse_leg_callid

log = logging.getLogger("vpbx.proxy")
RETRY_AFTER = 2         # seconds: what a 503 for an unreachable Redis tells the sender to wait


class Proxy:
    def __init__(self, sip, store, engine, guard, dtmf_socket, *, registrar, invites, dialogs,
                 legs, digits, orphans, backlog):
        self.sip, self.store, self.engine, self.guard = sip, store, engine, guard
        self.dtmf_socket = dtmf_socket      # (ip, port): rtpengine's reports, never SIP
        self.registrar, self.invites, self.dialogs = registrar, invites, dialogs
        self.legs, self.digits, self.orphans = legs, digits, orphans
        self.backlog = backlog

    def child_init(self, rank):
        return 0

    # ---- request route ----------------------------------------------------

    def ksr_request_route(self, msg):
        try:
            self.route_request()
        except resp.RespConnectionError:
            self.refuse_unavailable()
        except resp.RespError as exc:
            log.error("vpbx: %s %s: Redis: %s", self.sip.pv("$rm"), self.sip.pv("$ci"), exc)
            self.sip.reply(503, "Service Unavailable - state store")
        except Exception:
            log.exception("vpbx: %s %s", self.sip.pv("$rm"), self.sip.pv("$ci"))
            self.sip.reply(500, "Server Internal Error")
        return 1

    def refuse_unavailable(self):
        """Redis unreachable (its client logs when it goes and when it is back): 503 with
        Retry-After, in a transaction, so that tm answers the request's retransmissions
        again by itself and they cost Redis nothing."""
        sip = self.sip
        if not sip.is_method("ACK") and sip.newtran() == 0:
            return                          # a retransmission tm has answered
        sip.add_reply_header(f"Retry-After: {RETRY_AFTER}\r\n")
        sip.reply(503, "Service Unavailable - state store")

    def route_request(self):
        sip = self.sip
        if sip.pv_int("$Rp") == self.dtmf_socket[1] and sip.pv("$Ri") == self.dtmf_socket[0]:
            return      # SIP on the control plane's DTMF socket: for no one, not answered
        if self.route_reqinit():
            return
        if sip.is_method("CANCEL"):
            self.route_cancel()
            return
        if sip.has_totag():
            leg = parse_leg_callid(sip.pv("$ci"))
            if leg:
                self.legs.route_leg_request(*leg)
            else:
                self.dialogs.route()
            return
        if sip.is_method("ACK"):
            if sip.check_trans() > 0:
                sip.relay()
            return
        if sip.precheck_trans():            # retransmission being processed
            sip.check_trans()
            return
        if sip.check_trans() == 0:          # retransmission already answered
            return
        if self.guard.scanner(sip.pv("$ua")):
            return
        if sip.is_method("REGISTER"):
            self.registrar.route_register()
        elif sip.is_method("INVITE"):
            self.invites.route_invite()
        elif sip.is_method("OPTIONS") and sip.is_myself_ruri():
            self.registrar.route_options()
        elif sip.pv("$rm") == "REFER":
            sip.sl_reply(403, "Forbidden - REFER outside a dialog")
        else:
            sip.sl_reply(405, "Method Not Allowed")

    def route_cancel(self):
        """A CANCEL goes where its INVITE went (tm). One whose INVITE this Kamailio does not
        have (it was restarted while the call rang, or the CANCEL is forged) gets 481; the
        call's media session ends only if the CANCEL is checked to be the INVITE's own
        (Orphans.cancel)."""
        rc = self.sip.check_trans()
        if rc > 0:
            self.sip.relay()
        elif rc < 0:                        # (0: a retransmission tm has answered again)
            log.info("vpbx: CANCEL %s from %s: no such INVITE transaction here",
                     self.sip.pv("$ci"), self.sip.source())
            self.sip.sl_reply(481, "Call/Transaction Does Not Exist")
            self.orphans.cancel()

    def route_reqinit(self):
        """Sanity and loop checks; True when the request has been answered."""
        sip = self.sip
        why = sip.unreadable()          # first: every later step reads the message as text
        if why:
            log.info("vpbx: request from %s refused: %s", sip.source(), why)
            sip.sl_reply(400, f"Bad Request - {why}")
            return True
        hops = sip.maxfwd(10)
        if hops == -2:                  # no number
            sip.sl_reply(400, "Bad Request - bad Max-Forwards")
            return True
        if hops < 0:
            sip.sl_reply(483, "Too Many Hops")
            return True
        if not sip.sanity_check(17895, 7):      # sanity has answered 400 itself
            log.info("vpbx: malformed %s from %s", sip.pv("$rm"), sip.source())
            return True
        return False

    # ---- replies, tm events, rtpengine's reports, timers ---------------------------

    def _guarded(self, what, handler, *args):
        try:
            handler(*args)
        except resp.RespConnectionError as exc:
            log.info("vpbx: %s %s not handled: %s", what, self.sip.pv("$ci"), exc)
        except Exception:
            log.exception("vpbx: %s %s", what, self.sip.pv("$ci"))
        return 1

    def ksr_stray_reply(self, msg, evname=""):
        """tm's on_sl_reply: a reply no transaction matches is forwarded statelessly (by
        Kamailio, after this) or dropped (Orphans.reply). The drop is set last: a request
        the proxy sends meanwhile (t_uac_send runs tm's event route) would clear it."""
        try:
            if not self.orphans.reply():
                self.sip.drop()
        except Exception:
            log.exception("vpbx: stray reply %s", self.sip.pv("$ci"))
        return 1

    def ksr_onreply_invite(self, msg):
        return self._guarded("reply", self.invites.on_reply)

    def ksr_failure_invite(self, msg):
        return self._guarded("failure", self.invites.on_failure)

    def ksr_onreply_in_dialog(self, msg):
        return self._guarded("reply", self.dialogs.on_reply)

    def ksr_tm_event(self, msg, evname):
        return self._guarded("tm event", self.legs.local_request, evname)

    def ksr_onreply_leg(self, msg):
        return self._guarded("leg reply", self.legs.on_reply)

    def ksr_failure_leg(self, msg):
        return self._guarded("leg failure", self.legs.on_failure)

    def ksr_rtp_dtmf(self, msg):
        return self._guarded("rtp dtmf", self.digits.rtp_report)

    def ksr_timer(self, msg, evname=""):
        """rtimer, every 100 ms in its own process: what is due (code digit timeouts, DTMF
        guards after a code, the transfer engine's timers), and what waited for Redis."""
        try:
            due = self.store.due(time.time())
        except resp.RespConnectionError:
            return 1            # Redis unreachable: its client logs when it goes and returns
        self.backlog.run(self.engine)
        for callid, leg, what in due:
            try:
                if what == "rearm":
                    self.digits.rearm(callid, leg)
                elif what == "code":
                    self.digits.expire(callid, leg)
                elif what.startswith("t:"):
                    self.engine.handle(callid, transfer.Timeout(what[2:], leg))
            except Exception:
                log.exception("vpbx: timer %s %s %s", callid, leg, what)
        return 1
