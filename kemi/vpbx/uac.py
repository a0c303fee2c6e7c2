"""Requests the proxy sends itself during a transfer (Kamailio's tm as the UAC): the INVITE to
the target, BYEs into either dialog, and CANCEL through tm's JSON-RPC datagram socket.

Legs are described by the call record (docs/redis-keys.md): an original side ("caller",
"callee") is spoken to *as its peer* (the peer's URI and tag, the peer's next CSeq); an
originated leg ("leg1", ...) as the UAC the proxy is in that dialog.
"""
import json
import os
import socket

import KSR

from .registration import parse_contact
from .call import peer

# INVITEs being sent by this process, Call-ID -> From display name: tm's local-request event
# (run inside t_uac_send) gives them their reply routes, and puts back the display name that
# t_uac_send drops (Kamailio 5.6).
_SENDING = {}


def nexthop(src):
    """'udp:127.0.0.1:5070' (as stored) -> a next-hop URI for t_uac_send; "" (send to the
    R-URI) when no source is known."""
    if not src:
        return ""
    proto, _, hostport = src.partition(":")
    return f"sip:{hostport};transport={proto}"


def _send(method, ruri, dst, sock, headers, body=""):
    rc = KSR.tm.t_uac_send(method, ruri, nexthop(dst), sock, headers, body)
    if rc < 0:
        raise RuntimeError(f"t_uac_send {method} {ruri} via {dst} failed ({rc})")


def proxy_contact(socket_text):
    """The proxy's own Contact on a socket ('udp:127.0.0.1:5060')."""
    return f"<sip:vpbx@{socket_text.partition(':')[2]}>"


def dialog(call, leg):
    """How the proxy addresses `leg` in its dialog: (R-URI, next hop, socket, From, To,
    Call-ID)."""
    if leg in ("caller", "callee"):
        other = peer(leg)
        return (parse_contact(call[f"{leg}_contact"]).uri, call[f"{leg}_src"], call[f"{leg}_socket"],
                f"<{call[f'{other}_uri']}>;tag={call[f'{other}_tag']}",
                f"<{call[f'{leg}_uri']}>;tag={call[f'{leg}_tag']}",
                call["callid"])
    # Like the proxy's own routing to extensions: to the registered (then answered) Contact;
    # a taken-over dialog's end is reached where its requests came from.
    to_tag = call.get(f"{leg}_tag", "")
    return (call.get(f"{leg}_contact") or call[f"{leg}_target"], call.get(f"{leg}_src", ""),
            call[f"{leg}_socket"], call[f"{leg}_from"],
            f"<{call[f'{leg}_uri']}>" + (f";tag={to_tag}" if to_tag else ""),
            call[f"{leg}_callid"])


def invite(call, leg, sdp, identity, referred_by):
    """The INVITE to an originated leg. identity: (From header value, P-Asserted-Identity
    value, Privacy value or "")."""
    ruri, dst, sock, _, to, callid = dialog(call, leg)
    from_hdr, pai, privacy = identity
    headers = (f"From: {from_hdr}\r\nTo: {to}\r\nCall-ID: {callid}\r\nCSeq: 1 INVITE\r\n"
               f"Contact: {proxy_contact(sock)}\r\nMax-Forwards: 70\r\n"
               f"P-Asserted-Identity: {pai}\r\n"
               + (f"Privacy: {privacy}\r\n" if privacy else "")
               + (f"Referred-By: {referred_by}\r\n" if referred_by else "")
               + "Content-Type: application/sdp\r\n")
    _SENDING[callid] = from_hdr.partition("<")[0].strip()
    try:
        _send("INVITE", ruri, dst, sock, headers, sdp)
    finally:
        _SENDING.pop(callid, None)


def reinvite(call, leg, sdp, contact, cseq):
    """A re-INVITE into the leg's dialog (B of a taken-over dialog moves onto the client's
    media; the client comes off hold)."""
    callid = dialog(call, leg)[5]
    _SENDING[callid] = ""
    try:
        request(call, leg, "INVITE", cseq,
                f"Contact: {contact}\r\nContent-Type: application/sdp\r\n", sdp)
    finally:
        _SENDING.pop(callid, None)


def sending_invite(callid):
    """In tm's local-request event: whether this process is sending an INVITE of that
    Call-ID (one of a leg's: it needs the leg's reply routes)."""
    return callid in _SENDING


def restore_display(callid):
    """In tm's local-request event: the From display name t_uac_send dropped."""
    display = _SENDING.get(callid)
    if display:
        safe = "".join(ch for ch in display if ch.isalnum() or ch in ' "+-_.')
        KSR.textops.subst_hf("From", f"/^[^<]*</{safe} </", "f")


def request(call, leg, method, cseq, extra="", body=""):
    """A request into the leg's dialog with CSeq `cseq` (planned: call.cseq_field)."""
    ruri, dst, sock, from_hdr, to, callid = dialog(call, leg)
    headers = (f"From: {from_hdr}\r\nTo: {to}\r\nCall-ID: {callid}\r\nCSeq: {cseq} {method}\r\n"
               f"Max-Forwards: 70\r\n{extra}")
    _send(method, ruri, dst, sock, headers, body)


def bye(call, leg, cseq):
    request(call, leg, "BYE", cseq)


def notify(call, leg, status, final, cseq):
    """Progress of a REFER the proxy answered itself (RFC 3515: message/sipfrag)."""
    state = "terminated;reason=noresource" if final else "active;expires=60"
    request(call, leg, "NOTIFY", cseq,
                   f"Event: refer\r\nSubscription-State: {state}\r\n"
                   f"Contact: {proxy_contact(call[f'{leg}_socket'])}\r\n"
                   "Content-Type: message/sipfrag\r\n",
                   f"SIP/2.0 {status}\r\n")


def cancel(call, leg, rpc_socket):
    """CANCEL the leg's INVITE: tm.cancel through the JSON-RPC datagram socket, where it runs
    in its own process (tm.cancel from a SIP worker, or t_cancel_callid, break tm's state)."""
    request = {"jsonrpc": "2.0", "method": "tm.cancel",
               "params": [call[f"{leg}_callid"], call.get(f"{leg}_cseq") or "1"], "id": 1}
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        # An abstract reply address: jsonrpcs answers to it; nothing to clean up.
        sock.bind(f"\0vpbx-rpc-{os.getpid()}-{os.urandom(4).hex()}")
        sock.sendto(json.dumps(request).encode(), rpc_socket)
