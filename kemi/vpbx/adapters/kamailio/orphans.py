"""Messages for an INVITE transaction this Kamailio does not have: it died with a Kamailio
that was killed and started again while the call rang (or the message is forged). tm cannot
match them; what the proxy does instead, and only for messages checked to come from the
INVITE's own parties (docs/architecture.md, "When Kamailio restarts").

The check needs no Redis record (an unanswered call has none): the INVITE's rtpengine offer
carries a label naming where the INVITE came from and where it was relayed to
(`offer_label`), and rtpengine 10.5 returns it with the caller's party in `query`.
"""
import logging

from vpbx.core.call import parse_leg_callid
from vpbx.core.registration import split_header_list
from vpbx.core.routing import uri_hostport
from vpbx.adapters.kamailio.uac import nexthop
from vpbx.adapters.redis.resp import RespError
from vpbx.adapters.rtpengine.ngclient import NgError

log = logging.getLogger("vpbx.orphans")
FORWARD, DROP = True, False      # what Orphans.reply decides for a reply
LOST = (500, "Server Internal Error - call set-up lost")    # to a caller whose callee answered


def offer_label(source, ruri):
    """The label of an INVITE's offer: 'proto:ip:port>ip:port', the INVITE's source and the
    host:port of the Request-URI it is relayed to (where its replies come from)."""
    return f"{source}>{uri_hostport(ruri)}"


class Orphans:
    def __init__(self, store, ng, sip):
        self.store, self.ng, self.sip = store, ng, sip

    def _offer(self, callid, tag):
        """(source, relayed to) of the INVITE whose caller's tag is `tag`, from its
        rtpengine label; None when rtpengine has no such party."""
        try:
            party = self.ng.command("query", call_id=callid).get("tags", {}).get(tag)
        except NgError:
            return None                     # no such call in rtpengine (or unreachable)
        label = (party or {}).get("label", "")
        if ">" not in label:
            return None
        source, _, relayed_to = label.partition(">")
        return source, relayed_to

    def cancel(self):
        """A CANCEL no INVITE transaction here matches (already answered 481). The call's
        offer-only media session is deleted when the CANCEL is the INVITE's own: its From
        tag is the offer's party and it comes from where the INVITE came. Anything else — a
        stranger's CANCEL with a call's identifiers among them — ends nothing."""
        callid, tag = self.sip.pvs("$ci", "$ft")
        source = self.sip.source()
        try:
            offer = self._offer(callid, tag)
            if not offer or offer[0] != source or self.store.call_load(callid):
                log.info("vpbx: CANCEL %s from %s: not the INVITE's sender, or answered: "
                         "nothing ended", callid, source)
                return
            self.ng.command("delete", call_id=callid)
        except (NgError, RespError) as exc:
            log.info("vpbx: CANCEL %s: media session left to rtpengine's timeouts: %s",
                     callid, exc)
            return
        log.info("vpbx: CANCEL %s from %s: the unanswered call's media session deleted",
                 callid, source)

    def reply(self):
        """A reply no transaction here matches (tm's on_sl_reply) -> FORWARD (statelessly,
        by its Via, as Kamailio does by itself) or DROP.

        Forwarded as before: provisional replies, replies to other methods, to the proxy's
        own INVITEs, and to INVITEs of answered calls (a 2xx retransmitted after its
        transaction ended). A final reply to an unanswered INVITE the proxy has no
        transaction for counts only from where that INVITE was relayed to; else (a
        stranger's) it is dropped and changes nothing. From there: the call's media session
        is deleted; an error goes on to the caller (its INVITE ends with the callee's
        answer); a 2xx cannot make a call any more (its record and anchored SDP died with
        the transaction): the caller gets LOST instead and the callee an ACK and a BYE."""
        sip = self.sip
        status = sip.pv_int("$rs")
        callid, method, tag = sip.pvs("$ci", "$rm", "$ft")
        if method != "INVITE" or status < 200 or parse_leg_callid(callid):
            return FORWARD
        source = sip.source()
        try:
            if self.store.call_load(callid):
                return FORWARD              # an answered call's: e.g. its 2xx retransmitted
        except RespError:
            return FORWARD                  # Redis unreachable: as Kamailio does by itself
        offer = self._offer(callid, tag)
        if not offer or source.partition(":")[2] != offer[1]:
            log.info("vpbx: %d to INVITE %s from %s: no call set-up here matches: dropped",
                     status, callid, source)
            return DROP
        try:
            self.ng.command("delete", call_id=callid)
        except NgError as exc:
            log.info("vpbx: %d to INVITE %s: %s", status, callid, exc)
        if status >= 300:
            log.info("vpbx: %d to INVITE %s (its transaction lost): the unanswered call's "
                     "media session deleted, the answer forwarded", status, callid)
            return FORWARD
        self.hang_up(callid)
        self.refuse_caller(callid, offer[0])
        log.info("vpbx: %d to INVITE %s (its transaction lost): the callee got ACK and BYE, "
                 "the caller %d", status, callid, LOST[0])
        return DROP

    def refuse_caller(self, callid, caller_src):
        """Answer the caller's INVITE LOST, statelessly, to where the INVITE came from (the
        2xx being processed gives the caller's Vias, tags and CSeq; Kamailio cannot turn a
        2xx it forwards into an error)."""
        sip = self.sip
        vias = split_header_list(", ".join(sip.header_list("Via")))[1:]      # not ours
        from_hdr, to_hdr, cseq = sip.pvs("$hdr(From)", "$hdr(To)", "$hdr(CSeq)")
        sip.send_data(nexthop(caller_src), "".join([
            f"SIP/2.0 {LOST[0]} {LOST[1]}\r\n", *(f"Via: {via}\r\n" for via in vias),
            f"From: {from_hdr}\r\nTo: {to_hdr}\r\nCall-ID: {callid}\r\nCSeq: {cseq}\r\n",
            "Content-Length: 0\r\n\r\n"]))

    def hang_up(self, callid):
        """ACK and BYE the callee of the 2xx being processed (its dialog as the caller's)."""
        sip = self.sip
        from_hdr, to_hdr, cseq, contact = sip.pvs("$hdr(From)", "$hdr(To)", "$cs", "$ct")
        ruri = contact.strip().partition("<")[2].partition(">")[0] or contact.strip()
        hop = nexthop(sip.source())
        for method, number in (("ACK", int(cseq)), ("BYE", int(cseq) + 1)):
            headers = (f"From: {from_hdr}\r\nTo: {to_hdr}\r\nCall-ID: {callid}\r\n"
                       f"CSeq: {number} {method}\r\nMax-Forwards: 70\r\n")
            if sip.uac_send(method, ruri, hop, sip.local_socket(), headers, "") < 0:
                log.warning("vpbx: %s to the callee of %s not sent", method, callid)
