"""Input the proxy cannot take as text, from a stranger (127.0.0.7): a clear 400, never a
Python exception; its legitimate form still works. DTMF reports that are not what rtpengine
sends are ignored with a log line. (Found by the fuzz suite, test_fuzz.py.)"""
import socket
import uuid

import pytest

from conftest import TENANT
from harness import wait_for
from kamlog import LogMark
from rawua import RawUa

STRANGER = "127.0.0.7"


def ask(pbx, request, transport):
    """Send one request from the stranger -> the status line of the answer."""
    kind = socket.SOCK_DGRAM if transport == "udp" else socket.SOCK_STREAM
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind((STRANGER, 0))
        sock.settimeout(5)
        sock.connect(("127.0.0.1", pbx.cfg.sip_port))
        port = sock.getsockname()[1]
        sock.sendall(request.replace(b"LOCAL", f"{STRANGER}:{port}".encode())
                     .replace(b"TRANSPORT", transport.upper().encode()))
        return sock.recv(65535).split(b"\r\n", 1)[0].decode()


def options(pbx, extra=b"", method=b"OPTIONS"):
    return (method + b" sip:127.0.0.1:%d SIP/2.0\r\n"
            b"Via: SIP/2.0/TRANSPORT LOCAL;branch=z9hG4bK%s;rport\r\n"
            b"Max-Forwards: 70\r\nFrom: %s<sip:fuzz@127.0.0.7>;tag=1\r\n"
            b"To: <sip:127.0.0.1>\r\nCall-ID: %s\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
            % (pbx.cfg.sip_port, uuid.uuid4().hex.encode(), extra, uuid.uuid4().hex.encode()))


def invite(display):
    sdp = b"v=0\r\no=- 1 1 IN IP4 127.0.0.7\r\ns=-\r\nc=IN IP4 127.0.0.7\r\nt=0 0\r\nm=audio 9 RTP/AVP 0\r\n"
    return (b"INVITE sip:201@%s SIP/2.0\r\nVia: SIP/2.0/TRANSPORT LOCAL;branch=z9hG4bK%s;rport\r\n"
            b"Max-Forwards: 70\r\nFrom: \"%s\" <sip:202@%s>;tag=2\r\nTo: <sip:201@%s>\r\n"
            b"Call-ID: %s\r\nCSeq: 1 INVITE\r\nContact: <sip:202@LOCAL>\r\n"
            b"Content-Type: application/sdp\r\nContent-Length: %d\r\n\r\n%s"
            % (TENANT.encode(), uuid.uuid4().hex.encode(), display, TENANT.encode(),
               TENANT.encode(), uuid.uuid4().hex.encode(), len(sdp), sdp))


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_a_request_that_is_no_utf8_text_gets_400(pbx, transport):
    log = LogMark(pbx.cfg)
    assert ask(pbx, invite(b"J\xfcrgen \xff"), transport) == "SIP/2.0 400 Bad Request - not UTF-8"
    assert ask(pbx, options(pbx, b"\xc3\x28 "), transport) == "SIP/2.0 400 Bad Request - not UTF-8"
    # The same in UTF-8: the INVITE is routed (201 is not registered), OPTIONS answered.
    assert ask(pbx, invite("Jürgen".encode()), transport) == "SIP/2.0 480 Temporarily Unavailable"
    assert ask(pbx, options(pbx, "Jürgen ".encode()), transport) == "SIP/2.0 200 OK"
    log.assert_no_python_errors()
    assert pbx.store.call_keys() == []


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_a_request_with_a_nul_byte_gets_400(pbx, transport):
    log = LogMark(pbx.cfg)
    # A NUL in the method (and a CSeq that does not match it): the proxy's log line about
    # the malformed request passed the NUL to KSR, which failed in the next call.
    assert ask(pbx, options(pbx, method=b"OPTI\x00NS"), transport) == "SIP/2.0 400 Bad Request - NUL byte"
    assert ask(pbx, invite(b"\x00"), transport) == "SIP/2.0 400 Bad Request - NUL byte"
    assert ask(pbx, options(pbx), transport) == "SIP/2.0 200 OK"
    log.assert_no_python_errors()


def test_what_is_no_dtmf_report_is_ignored(pbx):
    """Sent from rtpengine's address (where reports come from), to the DTMF-report port.
    (Kamailio drops datagrams under 20 bytes before any route: each of these is longer.)"""
    log = LogMark(pbx.cfg)
    junk = [b'[{"callid": "c", "source_tag": "x", "event": 1}]', b"[" * 50000,
            b'{"callid": 5, "source_tag": [], "event": 10}',
            b'{"callid": "\\ud800", "source_tag": "x", "event": 10}',
            b'{"callid": "c", "source_tag": "x", "event": true}', b"\xff\xfe" * 16]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for datagram in junk:
            sock.sendto(datagram, ("127.0.0.1", pbx.cfg.dtmf_port))
    wait_for(lambda: log.text().count("that is no DTMF report") == len(junk), timeout=5,
             what="a log line for each datagram")
    log.assert_no_python_errors()


def test_a_reinvite_in_no_call_the_proxy_knows_gets_481_and_no_media_session(pbx):
    """A re-INVITE with a Route to the proxy but a Call-ID no answered call has: before, it
    was relayed and its SDP made an rtpengine call (ports held until rtpengine's timeout)."""
    target = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    target.bind(("127.0.0.1", 0))
    target.settimeout(0.5)
    callid = uuid.uuid4().hex
    sdp = b"v=0\r\no=- 1 1 IN IP4 127.0.0.7\r\ns=-\r\nc=IN IP4 127.0.0.7\r\nt=0 0\r\nm=audio 9 RTP/AVP 0\r\n"
    reinvite = (b"INVITE sip:201@127.0.0.1:%d SIP/2.0\r\nRoute: <sip:127.0.0.1:%d;lr>\r\n"
                b"Via: SIP/2.0/TRANSPORT LOCAL;branch=z9hG4bK%s;rport\r\nMax-Forwards: 70\r\n"
                b"From: <sip:202@%s>;tag=a\r\nTo: <sip:201@%s>;tag=b\r\nCall-ID: %s\r\n"
                b"CSeq: 5 INVITE\r\nContact: <sip:202@LOCAL>\r\nContent-Type: application/sdp\r\n"
                b"Content-Length: %d\r\n\r\n%s"
                % (target.getsockname()[1], pbx.cfg.sip_port, uuid.uuid4().hex.encode(),
                   TENANT.encode(), TENANT.encode(), callid.encode(), len(sdp), sdp))
    try:
        assert ask(pbx, reinvite, "udp") == "SIP/2.0 481 Call/Transaction Does Not Exist"
        assert callid not in pbx.cfg.ng().calls()
        with pytest.raises(socket.timeout):
            target.recv(4096)           # nothing relayed
    finally:
        target.close()


def test_a_datagram_cut_before_the_end_of_its_header_gets_400(pbx):
    """Before: it passed the sanity checks (Content-Length is optional over UDP), and tm
    failed to relay it ("EoH not parsed"): 500."""
    log = LogMark(pbx.cfg)
    target = RawUa(pbx.cfg.sip_port, "201", TENANT)
    notify = (b"NOTIFY %s SIP/2.0\r\nRoute: <sip:127.0.0.1:%d;lr>\r\n"
              b"Via: SIP/2.0/TRANSPORT LOCAL;branch=z9hG4bK%s;rport\r\nMax-Forwards: 70\r\n"
              b"From: <sip:202@%s>;tag=a\r\nTo: <sip:201@%s>;tag=b\r\nCall-ID: %s\r\n"
              b"CSeq: 7 NOTIFY\r\nEvent: refer\r\n"
              % (target.contact.encode(), pbx.cfg.sip_port, uuid.uuid4().hex.encode(),
                 TENANT.encode(), TENANT.encode(), uuid.uuid4().hex.encode()))
    try:
        assert ask(pbx, notify, "udp") == "SIP/2.0 400 Bad Request - header not ended"
        assert target.requests == []
        # Ended (an empty line; no Content-Length needed over UDP): routed as any NOTIFY of
        # a dialog the proxy does not know (481, not relayed).
        assert ask(pbx, notify + b"\r\n", "udp") == "SIP/2.0 481 Call/Transaction Does Not Exist"
        assert target.requests == []
    finally:
        target.close()
    log.assert_no_python_errors()


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_a_max_forwards_that_is_no_number_gets_400_not_483(pbx, transport):
    """Before: 483 Too Many Hops, which tells of a loop that there is not."""
    def with_max_forwards(value):
        return options(pbx).replace(b"Max-Forwards: 70", b"Max-Forwards: " + value)
    assert ask(pbx, with_max_forwards(b"abc"), transport) == "SIP/2.0 400 Bad Request - bad Max-Forwards"
    assert ask(pbx, with_max_forwards(b"0"), transport) == "SIP/2.0 483 Too Many Hops"
    assert ask(pbx, with_max_forwards(b"69"), transport) == "SIP/2.0 200 OK"
