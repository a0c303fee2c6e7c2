"""A new call: the INVITE routed to an extension or a trunk (Record-Route, rtpengine offer),
its replies, and the dialog record written once on the 2xx."""
import json
import logging
import time

from vpbx.engine import codes
from vpbx.core import refer, route_mark, routing, sdp as sdp_text, settings, transfer
from vpbx.core.call import SIDES
from vpbx.core.routing import address
from vpbx.adapters.kamailio.orphans import offer_label
from vpbx.adapters.rtpengine.media import Media

log = logging.getLogger("vpbx.invites")
# rtpengine_manage flags for every offer/answer; tags default to the SIP tags. strict-source:
# once rtpengine knows where a party sends from, packets from elsewhere are dropped (an
# outsider who finds a party's port can neither inject audio nor RFC 4733 "digits").
RTPE_FLAGS = "replace-origin replace-session-connection strict-source"
TX_AVP = "$avp(vpbx)"           # the INVITE's facts, carried by the transaction to its replies
UNANCHORED_S = 0.5              # a 2xx rtpengine could not take: the call's BYEs come this late


class Invites:
    def __init__(self, store, ng, sip, guard, auth, mark, backlog):
        self.store, self.ng, self.sip, self.guard, self.auth = store, ng, sip, guard, auth
        self.mark = mark                    # route_mark.RouteMark
        self.backlog = backlog              # backlog.Backlog: deletes rtpengine did not get

    def route_invite(self):
        sip = self.sip
        (from_user, from_domain, ruri_user, ruri_domain, proto, src_ip, src_port, local_ip,
         local_port, from_uri, from_name, from_tag, contact, cseq, pai, privacy, to_uri,
         body, replaces) = sip.pvs("$fU", "$fd", "$rU", "$rd", "$pr", "$si", "$sp", "$Ri", "$Rp",
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
            ruri_is_local=sip.is_myself_ruri(),
            trunk_tenant=trunk, tenant_known=known,
            caller_secret=caller_secret, callee_is_ext=callee_secret is not None,
            outbound=tenant.get("outbound"), decoy_secret=self.auth.decoy_secret))
        if not self.auth.authenticated(decision, from_domain, from_user) or self.auth.rejected(decision):
            return
        target = decision.outcome
        assert isinstance(target, (routing.ToExtension, routing.ToTrunk))
        if replaces:
            refused = self.replaces_refused(replaces, target.tenant, refer.party(
                decision.caller_role, decision.caller_ext, f"{proto}:{address(src_ip, src_port)}"))
            if refused:
                sip.reply(*refused)
                return
        if isinstance(target, routing.ToExtension):
            if not binding:
                sip.reply(480, "Temporarily Unavailable")
                return
            ruri, callee_role, callee_ext = binding["contact"], "ext", target.ext
        else:
            ruri, callee_role, callee_ext = f"sip:{ruri_user}@{target.hostport}", "trunk", ""
        sip.set_pv("$ru", ruri)
        sip.record_route(f";{route_mark.PARAM}={self.mark.of(sip.pv('$ci'), from_tag)}")
        sdp = sip.has_sdp()
        sip.set_pv(TX_AVP, json.dumps({
            # The tenant's settings as the call starts: changes apply from the next call.
            **{name: settings.render(value) for name, value in settings.effective(tenant).items()},
            "tenant": target.tenant,
            "caller_role": decision.caller_role, "caller_ext": decision.caller_ext,
            "caller_uri": from_uri, "caller_name": from_name, "caller_tag": from_tag,
            "caller_contact": contact, "caller_src": f"{proto}:{address(src_ip, src_port)}",
            "caller_socket": f"{proto}:{address(local_ip, local_port)}",
            "caller_rr": sip.header_values("Record-Route"), "caller_cseq": cseq,
            "caller_sdp": body if sdp else "", "caller_pai": pai, "caller_privacy": privacy,
            "callee_role": callee_role, "callee_ext": callee_ext,
            "callee_uri": to_uri, "callee_target": ruri,
        }))
        # The offer's label: where the INVITE came from and goes to, what messages the
        # transaction lost in a restart are checked against (orphans.py).
        label = offer_label(f"{proto}:{hostport}", ruri)
        if sdp and not sip.rtpengine_manage(f"{RTPE_FLAGS} label={label}"):
            # Never connected unanchored: without rtpengine the call is refused.
            log.warning("vpbx: INVITE %s refused: rtpengine did not take the offer", sip.pv("$ci"))
            sip.rtpengine_delete()          # whatever part of the offer rtpengine did keep
            sip.add_reply_header("Retry-After: 2\r\n")
            sip.reply(503, "Service Unavailable - media relay")
            return
        sip.on_reply("ksr_onreply_invite")
        sip.on_failure("ksr_failure_invite")
        sip.relay()

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
        log.info("vpbx: INVITE %s from %s (%s) may not replace that call", self.sip.pv("$ci"),
                 self.sip.source(), sender)
        return 403, "Forbidden - not a party of the call Replaces names"

    # ---- replies ------------------------------------------------------------

    def on_reply(self):
        status = self.sip.pv_int("$rs")
        if status >= 300:
            return
        sdp = self.sip.has_sdp()
        anchored = not (sdp and status > 100) or self.sip.rtpengine_manage(RTPE_FLAGS)
        if status < 200:
            return
        if anchored:
            self.save_call(sdp)
            return
        # rtpengine was lost while the call rang (docs/architecture.md, "When rtpengine
        # fails"): tm cannot hold back a 2xx. It reaches the caller with a media description
        # that sends nothing anywhere, never the callee's own address, and the call is ended
        # both ways half a second later, once the caller has had the time to ACK it.
        callid = self.sip.pv("$ci")
        log.warning("vpbx: 2xx to INVITE %s: rtpengine did not take the answer: the call is "
                    "ended", callid)
        self.sip.set_body(sdp_text.silenced(self.sip.pv("$rb")), "application/sdp")
        self.save_call(sdp, guard=False)
        self.store.schedule(callid, "callee", f"t:{transfer.UNANCHORED}", time.time() + UNANCHORED_S)

    def save_call(self, sdp, guard=True):
        """The dialog record: the INVITE's facts plus the answer's, written once on the 2xx."""
        facts, callid, tag, contact, proto, src_ip, src_port, local_ip, local_port, body = self.sip.pvs(
            TX_AVP, "$ci", "$tt", "$ct", "$pr", "$si", "$sp", "$Ri", "$Rp", "$rb")
        record = json.loads(facts)
        record.update({
            "state": "confirmed", "answered": f"{time.time():.3f}",
            "callee_tag": tag, "callee_contact": contact,
            "callee_src": f"{proto}:{address(src_ip, src_port)}",
            "callee_socket": f"{proto}:{address(local_ip, local_port)}",
            "callee_rr": self.sip.header_values("Record-Route"),
            "callee_cseq": "0", "callee_sdp": body if sdp else "",
            "rtp_caller": record["caller_tag"], "rtp_callee": tag,
        })
        self.store.call_save(callid, record)
        for side in SIDES if guard else ():
            if codes.may_type_codes(record, side):
                Media(self.ng, callid).guard(record[f"rtp_{side}"])

    def on_failure(self):
        self.backlog.delete_media(self.sip.pv("$ci"))
