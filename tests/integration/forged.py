"""In-dialog requests as an attacker forges them: built from what a party of the call knows
(the INVITE it received and the answer it sent), sent from a raw UDP socket of any address."""
import re
import socket
import uuid

import pytest

STRANGER = "127.0.0.7"      # stands for a host of the phones' network


def _header(message, name):
    match = re.search(rf"^{name}:\s*(.*?)\r?$", message, re.M | re.I)
    return match.group(1) if match else ""


def _uri(value):
    match = re.search(r"<([^>]*)>", value)
    return match.group(1) if match else value.split(";")[0]


class Dialog:
    """A dialog as its callee's party saw it: the INVITE received and the 2xx sent."""

    def __init__(self, invite, answer):
        self.callid = _header(invite, "Call-ID")
        self.caller = _header(invite, "From")        # with the caller's tag
        self.callee = _header(answer, "To")          # with the callee's tag
        self.caller_contact = _uri(_header(invite, "Contact"))
        self.callee_contact = _uri(_header(answer, "Contact"))
        self.routes = re.findall(r"^Record-Route:\s*(.*?)\r?$", invite, re.M | re.I)

    def request(self, side, method, cseq, source, body="", ctype="application/sdp", extra=""):
        """`method` as `side` ("caller" or "callee") would send it, claiming to come from
        `source` (ip, port) in its Via."""
        if side == "caller":
            ruri, from_, to, routes = self.callee_contact, self.caller, self.callee, self.routes[::-1]
        else:
            ruri, from_, to, routes = self.caller_contact, self.callee, self.caller, self.routes
        head = [f"{method} {ruri} SIP/2.0",
                f"Via: SIP/2.0/UDP {source[0]}:{source[1]};branch=z9hG4bK{uuid.uuid4().hex};rport",
                "Max-Forwards: 70", f"From: {from_}", f"To: {to}", f"Call-ID: {self.callid}",
                f"CSeq: {cseq} {method}", *(f"Route: {r}" for r in routes),
                f"Contact: <sip:forger@{source[0]}:{source[1]}>"]
        if extra:
            head.append(extra)
        if body:
            head.append(f"Content-Type: {ctype}")
        head.append(f"Content-Length: {len(body.encode())}")
        return ("\r\n".join(head) + "\r\n\r\n" + body).encode()


def send(proxy_port, build, source=(STRANGER, 0), timeout=3.0):
    """Send the request build((ip, port)) from a UDP socket bound to `source`; -> the final
    status line of the answer ("" when none came)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(source)
        sock.settimeout(timeout)
        sock.sendto(build(sock.getsockname()), ("127.0.0.1", proxy_port))
        while True:
            try:
                status = sock.recv(65535).decode(errors="replace").split("\r\n", 1)[0]
            except TimeoutError:
                return ""
            if not status.startswith("SIP/2.0 1"):
                return status


SDP = """v=0\r
o=- 9 9 IN IP4 {ip}\r
s=-\r
c=IN IP4 {ip}\r
t=0 0\r
m=audio {port} RTP/AVP 0\r
a=rtpmap:0 PCMU/8000\r
a=sendrecv\r
"""


def assert_not_relayed(pbx, method, mark="0123456789abcdef0123"):
    """A made-up dialog's request (with a made-up mark of the proxy in its Route) gets 481
    and the host its Request-URI names receives nothing."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as victim:
        victim.bind(("127.0.0.1", 0))
        victim.settimeout(1.0)
        made_up = Dialog(
            f"INVITE x SIP/2.0\r\nCall-ID: madeup-{method}@{STRANGER}\r\n"
            f"From: <sip:0049900123@{STRANGER}>;tag=f1\r\nContact: <sip:x@{STRANGER}>\r\n"
            f"Record-Route: <sip:127.0.0.1:{pbx.cfg.sip_port};lr;ftag=f1;vpbx={mark}>\r\n",
            f"SIP/2.0 200 OK\r\nTo: <sip:0049900123@carrier.example>;tag=t1\r\n"
            f"Contact: <sip:0049900123@127.0.0.1:{victim.getsockname()[1]}>\r\n")
        status = send(pbx.cfg.sip_port, lambda src: made_up.request(
            "caller", method, 2, src, body=SDP.format(ip=STRANGER, port=40000) if method == "INVITE" else ""))
        assert status == "SIP/2.0 481 Call/Transaction Does Not Exist"
        with pytest.raises(socket.timeout):
            victim.recv(4096)
