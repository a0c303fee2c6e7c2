"""Kamailio KEMI glue: turns SIP messages into routing facts and carries out decisions.

Kamailio calls the methods of the object returned by vpbx_kemi.mod_init().
Each step returns True when routing of the message is finished.
"""
import json
import os
import secrets
import time
import traceback

import KSR

from . import codes, dtmf, refer, registration, resp, routing, settings, transfer, uac
from .config import Config
from .engine import Engine
from .lockstore import LockStore
from .guard import Guard
from .media import Media
from .ngclient import NgClient
from .sipmsg import (address, has_sdp, header_list, header_values, is_dtmf_info, not_the_party,
                     local_socket, pv, pvs, reply, sender_side, source, unreadable)
from .store import SIDES, Store, peer
from .transfer_routes import TransferRoutes, joined_by_proxy

# rtpengine_manage flags for every offer/answer; tags default to the SIP tags. strict-source:
# once rtpengine knows where a party sends from, packets from elsewhere are dropped (an
# outsider who finds a party's port can neither inject audio nor RFC 4733 "digits").
RTPE_FLAGS = "replace-origin replace-session-connection strict-source"
TX_AVP = "$avp(vpbx)"           # the INVITE's facts, carried by the transaction to its replies
SIDE_AVP = "$avp(vpbx_side)"    # "caller" | "callee": who sent an in-dialog request
# Requests that may come in an early dialog (before the 2xx writes the record), without SDP.
EARLY_DIALOG = ("PRACK", "UPDATE", "INFO")
REARM_DELAY = 0.3       # seconds from a code's end until its typist's RFC 4733 events flow again


class Proxy(TransferRoutes):
    def __init__(self):
        self._store = None      # per process, connected lazily after fork
        self._engine = None
        self.guard = Guard()    # per process: scanners, request rates (counted in Redis)
        # scripts/vpbx passes Kamailio its configuration as the VPBX_* environment.
        self.cfg = Config.from_env(os.environ)
        self.ng = NgClient(self.cfg.rtpe_host, self.cfg.rtpe_port)  # what Kamailio's rtpengine module lacks
        self.dtmf_socket = (self.cfg.control, self.cfg.dtmf_port)   # rtpengine's reports, never SIP
        # What a caller or registrant that is no extension must prove: no password gives it.
        self.decoy_secret = secrets.token_hex(16)

    @property
    def store(self):
        if self._store is None:
            self._store = Store(resp.Client.from_url(self.cfg.redis_url))
        return self._store

    @property
    def locks(self):
        return LockStore(self.store.fast)

    @property
    def engine(self):
        if self._engine is None:
            self._engine = Engine(self.store, self.ng, uac, str(self.cfg.sounds), str(self.cfg.rpc_sock))
        return self._engine

    def child_init(self, rank):
        return 0

    # ---- request route ----------------------------------------------------

    def ksr_request_route(self, msg):
        try:
            self.route_request()
        except resp.RespError as exc:
            KSR.err(f"vpbx: {pv('$rm')} {pv('$ci')}: Redis: {exc}\n")
            reply(503, "Service Unavailable - state store")
        except Exception:
            KSR.err(f"vpbx: {pv('$rm')} {pv('$ci')}: {traceback.format_exc()}")
            reply(500, "Server Internal Error")
        return 1

    def route_request(self):
        if KSR.pv.get("$Rp") == self.dtmf_socket[1] and pv("$Ri") == self.dtmf_socket[0]:
            return      # SIP on the control plane's DTMF socket: for no one, not answered
        if self.route_reqinit():
            return
        if KSR.is_CANCEL():
            if KSR.tm.t_check_trans() > 0:
                self.relay()
            return
        if KSR.siputils.has_totag() > 0:
            leg = uac.parse_leg_callid(pv("$ci"))
            if leg:
                self.route_leg_request(*leg)
            else:
                self.route_within_dialog()
            return
        if KSR.is_ACK():
            if KSR.tm.t_check_trans() > 0:
                self.relay()
            return
        if KSR.tmx.t_precheck_trans() > 0:       # retransmission being processed
            KSR.tm.t_check_trans()
            return
        if KSR.tm.t_check_trans() == 0:         # retransmission already answered
            return
        if self.guard.scanner(pv("$ua")):
            return
        if KSR.is_REGISTER():
            self.route_register()
        elif KSR.is_INVITE():
            self.route_invite()
        elif KSR.is_OPTIONS() and KSR.is_myself_ruri() > 0:
            self.route_options()
        elif pv("$rm") == "REFER":
            KSR.sl.sl_send_reply(403, "Forbidden - REFER outside a dialog")
        else:
            KSR.sl.sl_send_reply(405, "Method Not Allowed")

    def route_reqinit(self):
        """Sanity and loop checks; True when the request has been answered."""
        why = unreadable()          # first: every later step reads the message as text
        if why:
            KSR.info(f"vpbx: request from {source()} refused: {why}\n")
            KSR.sl.sl_send_reply(400, f"Bad Request - {why}")
            return True
        hops = KSR.maxfwd.process_maxfwd(10)
        if hops == -2:                  # no number
            KSR.sl.sl_send_reply(400, "Bad Request - bad Max-Forwards")
            return True
        if hops < 0:
            KSR.sl.sl_send_reply(483, "Too Many Hops")
            return True
        if KSR.sanity.sanity_check(17895, 7) < 0:   # replies 400 itself
            KSR.info(f"vpbx: malformed {pv('$rm')} from {source()}\n")
            return True
        return False

    def route_within_dialog(self):
        if KSR.rr.loose_route() < 0:
            if KSR.is_ACK():                 # ACK of a negative reply: tm handles it
                if KSR.tm.t_check_trans() > 0:
                    self.relay()
                return
            KSR.sl.sl_send_reply(404, "Not Here")
            return
        callid = pv("$ci")
        if is_dtmf_info():
            self.route_info_dtmf(callid, sender_side())
            return
        if KSR.is_BYE():
            record = self.store.call_end(callid)
            if record == {}:
                self.no_such_dialog()
                return
            if record is not None and not self.sent_by(record, sender_side()):
                not_the_party()
                return
            if record is not None and record.get("x_join"):
                self.route_taken_over(callid, record["x_join"])
                return
            if record is not None:                  # the call has had a transfer
                self.bye_to_engine(callid, transfer.Hangup(sender_side()), record)
                return
            KSR.rtpengine.rtpengine_delete("")
        elif KSR.is_ACK():
            if KSR.tm.t_check_trans() == 0:  # the ACK of a 2xx the proxy sent itself
                return
            if has_sdp():                    # late offer: the ACK carries the answer
                KSR.rtpengine.rtpengine_manage(RTPE_FLAGS)
        else:
            side = sender_side()
            if pv("$rm") == "REFER" and not self.checked_refer(callid):
                return
            fields = {f"{side}_cseq": pv("$cs")}
            sdp = has_sdp()
            if sdp:
                fields[f"{side}_sdp"] = pv("$rb")
            known, written = self.store.call_update_from(callid, side, source(), fields)
            if known is None and (sdp or pv("$rm") not in EARLY_DIALOG):
                self.no_such_dialog()
                return
            if not written:
                if not self.sent_by(self.store.call_load(callid), side):
                    not_the_party()
                    return
                # Sent from where the party is registered now: its NAT binding moved.
                self.store.call_update(callid, {**fields, f"{side}_src": source()})
            phase, a, c, join = known or ("", "", "", "")
            if join:
                self.route_taken_over(callid, join)
                return
            if joined_by_proxy(phase, a, c):
                self.route_joined_request(callid, side)
                return
            if sdp:
                KSR.rtpengine.rtpengine_manage(RTPE_FLAGS)
                KSR.pv.sets(SIDE_AVP, side)
                KSR.tm.t_on_reply("ksr_onreply_in_dialog")
        self.relay()

    def no_such_dialog(self):
        """An in-dialog request naming no call the proxy knows (none was answered with that
        Call-ID, or it has ended): 481, never relayed — else anyone could have the proxy send
        requests where their Request-URI says (an open relay), and one with SDP would hold
        rtpengine ports. A retransmission of a request the proxy relayed gets its answer again."""
        if KSR.tm.t_check_trans() == 0:
            return
        KSR.sl.sl_send_reply(481, "Call/Transaction Does Not Exist")

    def after_code(self, callid, side, outcome):
        if isinstance(outcome, dtmf.Complete) and outcome.code.startswith("*"):
            self.engine.on_code(callid, side, outcome.code)

    def route_info_dtmf(self, callid, side):
        """A key press in SIP INFO: part of a feature code (answered here, not relayed) or
        not (relayed). Answered statefully, so a retransmission is not a second digit."""
        rc = KSR.tm.t_newtran()
        if rc == 0:                 # a retransmission: tm has answered it again
            return
        if rc < 0:
            KSR.sl.sl_reply_error()
            return
        self.info_dtmf(callid, side)

    def info_dtmf(self, callid, side):
        ctype, body = pvs("$cT", "$rb")
        try:
            key = dtmf.info_digit(ctype, body)
        except dtmf.BadDtmf as bad:
            call, side, _ = self.store.dtmf_load(callid, side)
            if call and (call.get("x_join") or codes.may_type_codes(call, side)):
                KSR.tm.t_reply(400, f"Bad Request - {bad}")
            else:
                self.relay()
            return
        outcome, call, _ = codes.digit(self.store, callid, side, key, "info", sent_by=self.sent_by)
        if outcome == codes.NOT_THE_PARTY:
            not_the_party()
            return
        if call.get("x_join"):                  # a dialog an attended REFER took over
            joined, leg, b_side = call["x_join"].split()
            if side == b_side:
                self.info_dtmf(joined, leg)
            else:
                KSR.tm.t_reply(200, "OK")
            return
        if outcome is None or isinstance(outcome, dtmf.Pass):
            if joined_by_proxy(call.get("x_phase"), call.get("x_a"), call.get("x_c")):
                KSR.tm.t_reply(200, "OK")       # the peer is gone or on hold: not relayed
                return
            # The proxy may later speak in this dialog as this side: it must know its CSeq.
            self.store.call_update(callid, {f"{side}_cseq": pv("$cs")})
            self.relay()
        else:
            KSR.tm.t_reply(200, "OK")
            self.hold_back_rtp_dtmf(callid, call, side, outcome)
            self.after_code(callid, side, outcome)

    def sent_by(self, call, side):
        """Whether the request being routed comes from `side` of the call: from the address
        the record holds for it (proto:ip:port) or, for an extension, from where it is
        registered now (its NAT binding may have moved since the call began). The From tag
        only says which side a request claims to be from."""
        sender = source()
        if call.get(f"{side}_src") == sender:
            return True
        ext = call.get(f"{side}_ext") if call.get(f"{side}_role") == "ext" else ""
        return bool(ext) and self.store.binding(call["tenant"], ext).get("src") == sender

    def ksr_rtp_dtmf(self, msg):
        """A digit rtpengine detected in RFC 4733 events: {"callid", "source_tag", "event", ...}."""
        try:
            callid, tag, key = dtmf.report_digit(pv("$mb"))
        except (UnicodeDecodeError, dtmf.BadDtmf):
            KSR.info(f"vpbx: ignored a datagram from {source()} that is no DTMF report\n")
            return 1
        try:
            outcome, call, side = codes.digit(self.store, callid, None, key, "rtp", rtp_tag=tag)
            if outcome is not None:
                self.hold_back_rtp_dtmf(callid, call, side, outcome)
                self.after_code(callid, side, outcome)
        except Exception:
            KSR.err(f"vpbx: rtp dtmf: {traceback.format_exc()}")
        return 1

    def hold_back_rtp_dtmf(self, callid, call, side, outcome):
        """After a code, the typist's events flow again (until its next `*`): not at once, as
        the last digit's trailing end packets are still under way."""
        if isinstance(outcome, (dtmf.Complete, dtmf.Discard)):
            self.store.schedule_rearm(callid, side, time.time() + REARM_DELAY)

    def ksr_timer(self, msg, evname=""):
        """rtimer, every 100 ms in its own process: what is due (code digit timeouts, DTMF
        guards after a code, the transfer engine's timers)."""
        for callid, leg, what in self.store.due(time.time()):
            try:
                if what == "rearm":
                    code, tag, phase = self.store.typing(callid, leg)
                    # Not while a code is typed, nor while a transfer keeps the party muted.
                    if tag and not code and phase in ("", "talking"):
                        Media(self.ng, callid).guard(tag)
                elif what == "code":
                    ended = codes.expire(self.store, callid, leg)
                    if ended:
                        self.hold_back_rtp_dtmf(callid, ended[1], leg, ended[0])
                        self.after_code(callid, leg, ended[0])
                elif what.startswith("t:"):
                    self.engine.handle(callid, transfer.Timeout(what[2:], leg))
            except Exception:
                KSR.err(f"vpbx: timer {callid} {leg} {what}: {traceback.format_exc()}")
        return 1

    def route_options(self):
        ip, port, now = pv("$si"), pv("$sp"), time.time()
        hostport = address(ip, port)
        if self.guard.held("options", hostport, now) or self.guard.refused(
                "options", hostport, self.store.options_rate(hostport, ip, now), now):
            return
        KSR.sl.sl_send_reply(200, "OK")

    def route_register(self):
        domain, user, ip, port = pvs("$td", "$tU", "$si", "$sp")
        hostport, now = address(ip, port), time.time()
        if self.guard.held("register", hostport, now):
            return
        known, secret, binding, rate = self.store.register_facts(domain, user, hostport, ip, now)
        if self.guard.refused("register", hostport, rate, now):
            return
        decision = routing.route_register(domain, user, known, secret, self.decoy_secret)
        if not self.authenticated(decision, domain, user) or self.rejected(decision):
            return
        try:
            contact = registration.requested_contact(header_list("Contact"))
            seconds = registration.lifetime(contact, pv("$hdr(Expires)")) if contact else None
        except registration.RegisterError as refused:
            if refused.headers:
                KSR.hdr.append_to_reply(refused.headers)
            KSR.sl.sl_send_reply(refused.code, refused.reason)
            return
        if contact is None:                         # a query: report the current binding
            if binding:
                left = max(0, int(float(binding["expires_at"]) - time.time()))
                KSR.hdr.append_to_reply(f"Contact: <{binding['contact']}>;expires={left}\r\n")
        elif seconds == 0:
            self.store.unbind(domain, user)
        else:
            self.store.bind(domain, user, {
                "contact": contact.uri, "src": source(), "socket": local_socket(),
                "expires_at": f"{time.time() + seconds:.0f}", "user_agent": pv("$ua"),
                "callid": pv("$ci"), "cseq": pv("$cs")}, seconds)
            KSR.hdr.append_to_reply(f"Contact: <{contact.uri}>;expires={seconds}\r\n")
        KSR.sl.sl_send_reply(200, "OK")

    def route_invite(self):
        (from_user, from_domain, ruri_user, ruri_domain, proto, src_ip, src_port, local_ip,
         local_port, from_uri, from_name, from_tag, contact, cseq, pai, privacy, to_uri,
         body, replaces) = pvs("$fU", "$fd", "$rU", "$rd", "$pr", "$si", "$sp", "$Ri", "$Rp",
                               "$fu", "$fn", "$ft", "$ct", "$cs", "$ai", "$hdr(Privacy)", "$tu",
                               "$rb", "$hdr(Replaces)")
        hostport, now = address(src_ip, src_port), time.time()
        if self.guard.held("invite", hostport, now):
            return
        trunk, known, tenant, caller_secret, callee_secret, binding, rate = self.store.invite_facts(
            hostport, from_domain, from_user, ruri_user, src_ip, now)
        if not trunk and self.guard.refused("invite", hostport, rate, now):
            return
        decision = routing.route_invite(routing.InviteFacts(
            from_user=from_user, from_domain=from_domain,
            ruri_user=ruri_user, ruri_domain=ruri_domain,
            ruri_is_local=KSR.is_myself_ruri() > 0,
            trunk_tenant=trunk, tenant_known=known,
            caller_secret=caller_secret, callee_is_ext=callee_secret is not None,
            outbound=tenant.get("outbound"), decoy_secret=self.decoy_secret))
        if not self.authenticated(decision, from_domain, from_user) or self.rejected(decision):
            return
        target = decision.outcome
        if replaces:
            refused = self.replaces_refused(replaces, target.tenant, refer.party(
                decision.caller_role, decision.caller_ext, f"{proto}:{address(src_ip, src_port)}"))
            if refused:
                reply(*refused)
                return
        if isinstance(target, routing.ToExtension):
            if not binding:
                reply(480, "Temporarily Unavailable")
                return
            ruri, callee_role, callee_ext = binding["contact"], "ext", target.ext
        else:
            ruri, callee_role, callee_ext = f"sip:{ruri_user}@{target.hostport}", "trunk", ""
        KSR.pv.sets("$ru", ruri)
        KSR.rr.record_route()
        sdp = has_sdp()
        KSR.pv.sets(TX_AVP, json.dumps({
            # The tenant's settings as the call starts: changes apply from the next call.
            **{name: settings.render(value) for name, value in settings.effective(tenant).items()},
            "tenant": target.tenant,
            "caller_role": decision.caller_role, "caller_ext": decision.caller_ext,
            "caller_uri": from_uri, "caller_name": from_name, "caller_tag": from_tag,
            "caller_contact": contact, "caller_src": f"{proto}:{address(src_ip, src_port)}",
            "caller_socket": f"{proto}:{address(local_ip, local_port)}",
            "caller_rr": header_values("Record-Route"), "caller_cseq": cseq,
            "caller_sdp": body if sdp else "", "caller_pai": pai, "caller_privacy": privacy,
            "callee_role": callee_role, "callee_ext": callee_ext,
            "callee_uri": to_uri, "callee_target": ruri,
        }))
        if sdp:
            KSR.rtpengine.rtpengine_manage(RTPE_FLAGS)
        KSR.tm.t_on_reply("ksr_onreply_invite")
        KSR.tm.t_on_failure("ksr_failure_invite")
        self.relay()

    def replaces_refused(self, replaces, tenant, sender):
        """An INVITE with Replaces (a phone's attended transfer, last step) takes over the
        call it names: only a party of that call or the transferee of a REFER the proxy
        relayed may send it. -> (code, reason) to refuse it, None to route it."""
        call = self.store.call_load(replaces.split(";")[0].strip())
        if not call:
            return 481, "Call/Transaction Does Not Exist - Replaces names no call"
        if call["tenant"] != tenant:
            # An attended phone transfer may only join calls of one tenant.
            return 403, "Forbidden - Replaces names a call of another tenant"
        parties = {refer.party(call.get(f"{s}_role"), call.get(f"{s}_ext"), call.get(f"{s}_src", ""))
                   for s in SIDES}
        if refer.may_replace(sender, parties, call.get("x_replace_by"), time.time()):
            return None
        KSR.info(f"vpbx: INVITE {pv('$ci')} from {source()} ({sender}) may not replace that call\n")
        return 403, "Forbidden - not a party of the call Replaces names"

    def rejected(self, decision):
        if isinstance(decision.outcome, routing.Reject):
            reply(decision.outcome.code, decision.outcome.reason)
            return True
        return False

    def authenticated(self, decision, realm, user):
        """Digest check when the decision asks for one; challenges or rejects otherwise.
        A locked source or extension is refused before any challenge (lockout.py)."""
        if not decision.secret:
            return True
        ip = pv("$si")
        refused, limits = self.locks.check(ip, realm, user)
        if refused:
            KSR.dbg(f"vpbx: locked out: {pv('$rm')} {user}@{realm} from {source()}\n")
            reply(403, "Forbidden")
            return False
        rc = KSR.auth.pv_auth_check(realm, decision.secret, 1, 1)
        verdict = routing.auth_verdict(rc)
        if verdict == "ok":
            KSR.auth.consume_credentials()
            return True
        if verdict == "failed":
            src_count, ext_count = self.locks.failed(ip, realm, user, limits)
            KSR.info(f"vpbx: auth failed ({rc}) for {user}@{realm} from {source()}: failures "
                     f"{src_count} from {ip}, {ext_count} for {user}@{realm}\n")
            locked = [name for name, count in ((f"source {ip}", src_count),
                                               (f"extension {user}@{realm}", ext_count))
                      if count == limits.failures]
            if locked:
                KSR.warn(f"vpbx: locked for {limits.lock} s: {' and '.join(locked)}\n")
            reply(403, "Forbidden")
        else:       # 401 for REGISTER, 407 otherwise; qop=auth (+ stale=true)
            KSR.auth.auth_challenge(realm, 1 | (16 if verdict == "stale" else 0))
        return False

    def relay(self):
        if KSR.tm.t_relay() < 0:
            KSR.sl.sl_reply_error()

    # ---- replies ------------------------------------------------------------

    def ksr_onreply_invite(self, msg):
        try:
            status = int(KSR.pv.get("$rs"))
            if status >= 300:
                return 1
            sdp = has_sdp()
            if sdp and status > 100:
                KSR.rtpengine.rtpengine_manage(RTPE_FLAGS)
            if status >= 200:
                self.save_call(sdp)
        except Exception:
            KSR.err(f"vpbx: reply {pv('$ci')}: {traceback.format_exc()}")
        return 1

    def save_call(self, sdp):
        """The dialog record: the INVITE's facts plus the answer's, written once on the 2xx."""
        facts, callid, tag, contact, proto, src_ip, src_port, local_ip, local_port, body = pvs(
            TX_AVP, "$ci", "$tt", "$ct", "$pr", "$si", "$sp", "$Ri", "$Rp", "$rb")
        record = json.loads(facts)
        record.update({
            "state": "confirmed", "answered": f"{time.time():.3f}",
            "callee_tag": tag, "callee_contact": contact,
            "callee_src": f"{proto}:{address(src_ip, src_port)}",
            "callee_socket": f"{proto}:{address(local_ip, local_port)}",
            "callee_rr": header_values("Record-Route"),
            "callee_cseq": "0", "callee_sdp": body if sdp else "",
            "rtp_caller": record["caller_tag"], "rtp_callee": tag,
        })
        self.store.call_save(callid, record)
        for side in SIDES:
            if codes.may_type_codes(record, side):
                Media(self.ng, callid).guard(record[f"rtp_{side}"])

    def ksr_failure_invite(self, msg):
        try:
            KSR.rtpengine.rtpengine_delete("")
        except Exception:
            KSR.err(f"vpbx: failure {pv('$ci')}: {traceback.format_exc()}")
        return 1

    def ksr_onreply_in_dialog(self, msg):
        """2xx to a re-INVITE/UPDATE with SDP: rtpengine answer, remember the new SDP."""
        try:
            status = int(KSR.pv.get("$rs"))
            if 200 <= status < 300 and has_sdp():
                KSR.rtpengine.rtpengine_manage(RTPE_FLAGS)
                self.store.call_update(pv("$ci"), {f"{peer(pv(SIDE_AVP))}_sdp": pv("$rb")})
        except Exception:
            KSR.err(f"vpbx: reply {pv('$ci')}: {traceback.format_exc()}")
        return 1
