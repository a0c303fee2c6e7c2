"""Requests the proxy sends itself during a transfer (Kamailio's tm as the UAC): the INVITE to
the target, BYEs into either dialog, and CANCEL through tm's JSON-RPC datagram socket.

Legs are described by the call record (docs/redis-keys.md): an original side ("caller",
"callee") is spoken to *as its peer* (the peer's URI and tag, the peer's next CSeq); an
originated leg ("leg1", ...) as the UAC the proxy is in that dialog.
"""
import json
import os
import socket

from vpbx.core import route_mark
from vpbx.core.call import Leg, peer
from vpbx.core.registration import parse_contact


def nexthop(src):
    """'udp:127.0.0.1:5070' (as stored) -> a next-hop URI for t_uac_send; "" (send to the
    R-URI) when no source is known."""
    if not src:
        return ""
    proto, _, hostport = src.partition(":")
    return f"sip:{hostport};transport={proto}"


def dialog(call, leg):
    """How the proxy addresses `leg` in its dialog: (R-URI, next hop, socket, From, To,
    Call-ID)."""
    this = Leg(call, leg)
    if leg in ("caller", "callee"):
        other = Leg(call, peer(leg))
        return (parse_contact(this.contact).uri, this.src, this.socket,
                f"<{other.uri}>;tag={other.tag}", f"<{this.uri}>;tag={this.tag}", call["callid"])
    # Like the proxy's own routing to extensions: to the registered (then answered) Contact;
    # a taken-over dialog's end is reached where its requests came from.
    return (this.contact or this.get("target"), this.src, this.socket, this.get("from"),
            f"<{this.uri}>" + (f";tag={this.tag}" if this.tag else ""), this.callid)


class Uac:
    """The proxy's own requests, sent through Kamailio's tm (the `sip` adapter)."""

    def __init__(self, sip, rpc_socket, mark):
        self.sip = sip
        self.rpc_socket = rpc_socket
        self.mark = mark                    # route_mark.RouteMark
        # INVITEs being sent by this process, Call-ID -> From display name: tm's local-request
        # event (run inside t_uac_send) gives them their reply routes, and puts back the
        # display name that t_uac_send drops (Kamailio 5.6).
        self.sending: dict[str, str] = {}

    def proxy_contact(self, socket_text, callid):
        """The proxy's own Contact on a socket ('udp:127.0.0.1:5060') in the dialog `callid`,
        with the dialog's mark: the leg's requests tell they are in one of the proxy's own
        dialogs even while Redis cannot be asked (legs.py)."""
        return (f"<sip:vpbx@{socket_text.partition(':')[2]};"
                f"{route_mark.PARAM}={self.mark.of_leg(callid)}>")

    def _send(self, method, ruri, dst, sock, headers, body=""):
        rc = self.sip.uac_send(method, ruri, nexthop(dst), sock, headers, body)
        if rc < 0:
            raise RuntimeError(f"t_uac_send {method} {ruri} via {dst} failed ({rc})")

    def invite(self, call, leg, sdp, identity, referred_by):
        """The INVITE to an originated leg. identity: (From header value, P-Asserted-Identity
        value, Privacy value or "")."""
        ruri, dst, sock, _, to, callid = dialog(call, leg)
        from_hdr, pai, privacy = identity
        headers = (f"From: {from_hdr}\r\nTo: {to}\r\nCall-ID: {callid}\r\nCSeq: 1 INVITE\r\n"
                   f"Contact: {self.proxy_contact(sock, callid)}\r\nMax-Forwards: 70\r\n"
                   f"P-Asserted-Identity: {pai}\r\n"
                   + (f"Privacy: {privacy}\r\n" if privacy else "")
                   + (f"Referred-By: {referred_by}\r\n" if referred_by else "")
                   + "Content-Type: application/sdp\r\n")
        self.sending[callid] = from_hdr.partition("<")[0].strip()
        try:
            self._send("INVITE", ruri, dst, sock, headers, sdp)
        finally:
            self.sending.pop(callid, None)

    def reinvite(self, call, leg, sdp, contact, cseq):
        """A re-INVITE into the leg's dialog (B of a taken-over dialog moves onto the client's
        media; the client comes off hold)."""
        callid = dialog(call, leg)[5]
        self.sending[callid] = ""
        try:
            self.request(call, leg, "INVITE", cseq,
                         f"Contact: {contact}\r\nContent-Type: application/sdp\r\n", sdp)
        finally:
            self.sending.pop(callid, None)

    def sending_invite(self, callid):
        """In tm's local-request event: whether this process is sending an INVITE of that
        Call-ID (one of a leg's: it needs the leg's reply routes)."""
        return callid in self.sending

    def restore_display(self, callid):
        """In tm's local-request event: the From display name t_uac_send dropped."""
        display = self.sending.get(callid)
        if display:
            self.sip.set_from_display("".join(ch for ch in display if ch.isalnum() or ch in ' "+-_.'))

    def request(self, call, leg, method, cseq, extra="", body=""):
        """A request into the leg's dialog with CSeq `cseq` (planned: call.cseq_field)."""
        ruri, dst, sock, from_hdr, to, callid = dialog(call, leg)
        headers = (f"From: {from_hdr}\r\nTo: {to}\r\nCall-ID: {callid}\r\nCSeq: {cseq} {method}\r\n"
                   f"Max-Forwards: 70\r\n{extra}")
        self._send(method, ruri, dst, sock, headers, body)

    def bye(self, call, leg, cseq):
        self.request(call, leg, "BYE", cseq)

    def notify(self, call, leg, status, final, cseq):
        """Progress of a REFER the proxy answered itself (RFC 3515: message/sipfrag)."""
        sock, callid = Leg(call, leg).socket, dialog(call, leg)[5]
        state = "terminated;reason=noresource" if final else "active;expires=60"
        self.request(call, leg, "NOTIFY", cseq,
                     f"Event: refer\r\nSubscription-State: {state}\r\n"
                     f"Contact: {self.proxy_contact(sock, callid)}\r\n"
                     "Content-Type: message/sipfrag\r\n",
                     f"SIP/2.0 {status}\r\n")

    def cancel(self, call, leg):
        """CANCEL the leg's INVITE: tm.cancel through the JSON-RPC datagram socket, where it
        runs in its own process (tm.cancel from a SIP worker, or t_cancel_callid, break tm's
        state)."""
        request = {"jsonrpc": "2.0", "method": "tm.cancel",
                   "params": [Leg(call, leg).callid, call.get(f"{leg}_cseq") or "1"], "id": 1}
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            # An abstract reply address: jsonrpcs answers to it; nothing to clean up.
            sock.bind(f"\0vpbx-rpc-{os.getpid()}-{os.urandom(4).hex()}")
            sock.sendto(json.dumps(request).encode(), self.rpc_socket)
