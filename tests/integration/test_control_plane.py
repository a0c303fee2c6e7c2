"""The control plane is private: rtpengine's ng port and the DTMF-report socket listen on the
control address, never on the phones' one, and only rtpengine's reports on the DTMF socket
count as digits. 127.0.0.7 stands for a host of the phones' network."""
import json
import re
import socket
import subprocess

import pytest

from vpbx.tooling import stack

from calls import callee, caller, register
from dtmf_calls import completed_codes, type_over_audio
from harness import RtpPeer, free_port, kamcmd, read_port, wait_for

STRANGER = "127.0.0.7"


def listeners(proto, port):
    """The local addresses listening on a port (ss; proto "u" or "t")."""
    out = subprocess.run(["ss", "-H", "-ln" + proto, f"sport = :{port}"], capture_output=True,
                         text=True, check=True).stdout
    return sorted({line.split()[3].rpartition(":")[0] for line in out.splitlines()})


def answered(address, payload, timeout=0.5):
    """Whether anything at a UDP address answers a datagram sent from the stranger."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((STRANGER, 0))
        sock.settimeout(timeout)
        sock.connect(address)
        sock.send(payload)
        try:
            return sock.recv(4096)
        except (TimeoutError, ConnectionRefusedError):
            return None


@pytest.fixture(scope="module")
def public_node(tmp_path_factory):
    """A node whose phones reach it at 127.0.0.2 (VPBX_LISTEN); its control address is the
    default, 127.0.0.1."""
    cfg = stack.Config.from_env({
        "VPBX_VAR": str(tmp_path_factory.mktemp("public")),
        "VPBX_LISTEN": "127.0.0.2",
        "VPBX_SIP_PORT": str(free_port()), "VPBX_DTMF_PORT": str(free_port()),
        "VPBX_REDIS_PORT": str(free_port()), "VPBX_RTPE_PORT": str(free_port()),
        "VPBX_RTP_PORTS": "19900-19999", "VPBX_CHILDREN": "1",
    })
    stack.up(cfg, say=lambda _: None)
    yield cfg
    stack.down(cfg, say=lambda _: None)


def test_control_sockets_are_not_on_the_public_address(public_node):
    cfg = public_node
    assert listeners("u", cfg.sip_port) == ["127.0.0.2"] == listeners("t", cfg.sip_port)
    assert listeners("u", cfg.rtpe_port) == ["127.0.0.1"]
    assert listeners("u", cfg.dtmf_port) == ["127.0.0.1"]
    assert listeners("t", cfg.private_redis_port) == ["127.0.0.1"]
    ping = b"probe d7:command4:pinge"
    assert answered(("127.0.0.2", cfg.rtpe_port), ping) is None
    assert answered(("127.0.0.1", cfg.rtpe_port), ping) == b"probe d6:result4:ponge"


def dropped(cfg):
    match = re.search(r"vpbx_nonsip_dropped = (\d+)",
                      kamcmd(cfg, "stats.get_statistics", "vpbx_nonsip_dropped"))
    assert match, "no vpbx_nonsip_dropped statistic"
    return int(match.group(1))


def report(callid, tag, digit):
    event = "0123456789*#".index(digit)
    return json.dumps({"callid": callid, "source_tag": tag, "tags": [tag], "type": "DTMF",
                       "timestamp": 1, "source_ip": "127.0.0.1", "event": event,
                       "duration": 800, "volume": 10}).encode()


def forge(address, source, datagrams):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((source, 0))
        for datagram in datagrams:
            sock.sendto(datagram, address)


def test_forged_digit_reports_do_nothing_and_the_employees_code_still_counts(pbx_transfer):
    """The client knows the Call-ID and the employee's tag (rtpengine's tags are the SIP tags)
    and forges rtpengine's reports of `*202#`: on the SIP port (from a stranger and from the
    proxy's own host) and on the DTMF socket from a stranger. None counts; the employee's
    own `*100` typed right after does."""
    pbx = pbx_transfer
    cfg = pbx.cfg
    b = callee(pbx, "202", hold_ms=0)
    register(pbx, "202", b.port).passed()
    a = caller(pbx, "201", "202", hold_ms=6000)
    a_dest, b_dest = read_port(pbx.workdir, a.name), read_port(pbx.workdir, b.name)
    invite = wait_for(lambda: b.received("INVITE "), what="the INVITE at the client")[0]
    callid_match = re.search(r"^Call-ID:\s*(\S+)", invite, re.M)
    tag_match = re.search(r"^From:.*;tag=([^;\s]+)", invite, re.M)
    assert callid_match and tag_match, invite
    callid, tag = callid_match.group(1), tag_match.group(1)
    wait_for(lambda: pbx.calls.call_load(callid), what="the dialog record")
    before = dropped(cfg)
    forged = [report(callid, tag, d) for d in "*202#"]
    forge(("127.0.0.1", cfg.sip_port), STRANGER, forged)
    forge(("127.0.0.1", cfg.sip_port), "127.0.0.1", forged)
    forge(("127.0.0.1", cfg.dtmf_port), STRANGER, forged)
    wait_for(lambda: dropped(cfg) == before + 3 * len(forged), what="the forged reports dropped")
    assert completed_codes(pbx, "code") == []
    assert not pbx.redis.exists(f"vpbx:dtmf:{{{callid}}}:caller")
    assert "x_phase" not in pbx.calls.call_load(callid)

    type_over_audio(a.media, a_dest, b.media, b_dest, "*100")
    a.passed()
    b.passed()
    assert completed_codes(pbx, "code", "source") == [("*100", "rtp")]
    assert not b.received("INVITE ")[1:], "no INVITE besides the call's own"


def options(branch):
    return (f"OPTIONS sip:127.0.0.1 SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {STRANGER}:5999;branch=z9hG4bK{branch};rport\r\n"
            f"Max-Forwards: 70\r\nFrom: <sip:x@{STRANGER}>;tag=1\r\nTo: <sip:127.0.0.1>\r\n"
            f"Call-ID: {branch}@{STRANGER}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n").encode()


def test_sip_on_the_dtmf_socket_is_not_answered(pbx):
    cfg = pbx.cfg
    assert answered(("127.0.0.1", cfg.dtmf_port), options("dtmfsock")) is None
    assert answered(("127.0.0.1", cfg.sip_port), options("sipsock")).startswith(b"SIP/2.0 200")


def test_digits_injected_into_the_employees_rtp_port_do_nothing(pbx_transfer):
    """A stranger who finds the employee's rtpengine port (by scanning the RTP range) sends
    RFC 4733 events there: rtpengine takes media only from the address it learnt (strict
    source, once the first 3-4 s of a call in which it learns the address are over), so no digit
    is reported; the employee's own code still counts."""
    pbx = pbx_transfer
    b = callee(pbx, "202", hold_ms=0)
    register(pbx, "202", b.port).passed()
    a = caller(pbx, "201", "202", hold_ms=11000)
    a_dest, b_dest = read_port(pbx.workdir, a.name), read_port(pbx.workdir, b.name)
    # rtpengine learns where A sends from until 3 s (whole seconds: up to 4) after the last
    # signalling, then holds to the address of A's next packet.
    a.media.exchange(a_dest, 250)
    intruder = RtpPeer(0xBAD, ip=STRANGER)
    type_over_audio(intruder, a_dest, b.media, b_dest, "*202#")
    assert completed_codes(pbx, "code") == []
    assert pbx.redis.keys("vpbx:dtmf:*") == []
    type_over_audio(a.media, a_dest, b.media, b_dest, "*100")
    a.passed()
    b.passed()
    intruder.close()
    assert completed_codes(pbx, "code", "source") == [("*100", "rtp")]
    assert 0xBAD not in b.media.received, "the intruder's packets reached the client"
