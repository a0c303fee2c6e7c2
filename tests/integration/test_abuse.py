"""Abuse limits at the SIP edge, tried as an attacker would: raw sockets on another loopback
address (127.0.0.7 stands for a foreign host) sending scanners' requests and floods."""
import os
import re
import socket
import subprocess
import uuid

import pytest

from conftest import TENANT
from harness import Sipp
from vpbx.core import limits
from vpbx.tooling.stack import ROOT

STRANGER = "127.0.0.7"
# Floods come from a host of their own: a worker remembers a refused source for a second,
# which must not touch later tests' requests from 127.0.0.7.
FLOODER = "127.0.0.8"


class Peer:
    """A raw SIP UDP endpoint at ip (port taken free)."""

    def __init__(self, pbx, ip=STRANGER, port=0):
        self.pbx = pbx
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((ip, port))
        self.ip, self.port = self.sock.getsockname()

    def request(self, method, *, to_user="202", from_user="201", user_agent=None, callid=None,
                ruri=None, contact_port=None):
        callid = callid or uuid.uuid4().hex
        ua = f"User-Agent: {user_agent}\r\n" if user_agent else ""
        ruri = ruri or (f"sip:{TENANT}" if method == "REGISTER" else f"sip:{to_user}@{TENANT}")
        to = from_user if method == "REGISTER" else to_user
        contact = f"<sip:{from_user}@{self.ip}:{contact_port or self.port}>"
        self.sock.sendto((
            f"{method} {ruri} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {self.ip}:{self.port};branch=z9hG4bK{uuid.uuid4().hex};rport\r\n"
            f"Max-Forwards: 70\r\nFrom: <sip:{from_user}@{TENANT}>;tag={uuid.uuid4().hex[:8]}\r\n"
            f"To: <sip:{to}@{TENANT}>\r\nCall-ID: {callid}\r\nCSeq: 1 {method}\r\n"
            f"Contact: {contact}\r\n{ua}"
            f"{'Expires: 300' + chr(13) + chr(10) if method == 'REGISTER' else ''}"
            "Content-Length: 0\r\n\r\n").encode(), ("127.0.0.1", self.pbx.cfg.sip_port))
        return callid

    def final(self, callid, timeout=5.0):
        """The first final reply (>= 200) for callid: its status line and headers."""
        self.sock.settimeout(timeout)
        while True:
            data = self.sock.recv(65535).decode(errors="replace")
            if f"Call-ID: {callid}" in data and not re.match(r"SIP/2.0 1\d\d", data):
                return data

    def pending(self):
        """Every datagram waiting in the socket."""
        self.sock.setblocking(False)
        found = []
        try:
            while True:
                found.append(self.sock.recv(65535).decode(errors="replace"))
        except BlockingIOError:
            pass
        return found

    def close(self):
        self.sock.close()


def status(reply):
    return reply.split("\r\n", 1)[0]


def keyspace(pbx):
    """Every vpbx key with its value (rtimer's due set aside: it is claimed all the time)."""
    dump = {}
    for key in pbx.redis.scan_iter("vpbx:*"):
        kind = pbx.redis.type(key)
        dump[key] = (pbx.redis.hgetall(key) if kind == "hash" else pbx.redis.get(key)
                     if kind == "string" else kind)
    return dump


# ---- scanners ---------------------------------------------------------------------

@pytest.mark.parametrize("user_agent", ["friendly-scanner", "sipcli/v1.8", "VaxSIPUserAgent/3.1"])
def test_a_scanners_requests_are_dropped_before_any_redis_work(pbx, user_agent):
    callee = Sipp(pbx.workdir, "callee_busy", pbx.address, name="callee")
    phone = Peer(pbx, ip="127.0.0.1")                   # 202 registers at the callee
    callid = phone.request("REGISTER", from_user="202", contact_port=callee.port)
    assert status(phone.final(callid)) == "SIP/2.0 200 OK"
    phone.close()
    before = keyspace(pbx)
    scanner = Peer(pbx)
    scans = [scanner.request(method, user_agent=user_agent)
             for method in ("OPTIONS", "REGISTER", "INVITE")]
    scans.append(scanner.request("INVITE", user_agent=user_agent.upper()))
    # The same INVITE without the scanner's User-Agent, from the same host, reaches 202.
    plain = Peer(pbx)
    callid = plain.request("INVITE")
    assert status(plain.final(callid)) == "SIP/2.0 486 Busy Here"
    callee.passed()
    assert [m for m in callee.received("INVITE ") if any(c in m for c in scans)] == []
    assert len(callee.received("INVITE ")) == 1
    # Nothing came back to the scanner, and nothing of it is in Redis: not even a count.
    assert scanner.pending() == []
    after = keyspace(pbx)
    written = {k: v for k, v in after.items() if before.get(k) != v}
    assert written == {k: "1" for k in written if k.startswith(f"vpbx:rate:invite:{STRANGER}:")}
    assert len(written) == 1                            # the plain INVITE's count
    log = (pbx.cfg.var / "log" / "kamailio.log").read_text(errors="replace")
    # Logged, but at most once per worker and 10 s (an earlier case's line may stand for it).
    assert any(f"from udp:{STRANGER}:" in line and "scanner User-Agent" in line
               for line in log.splitlines())
    scanner.close()
    plain.close()


# ---- request rates ------------------------------------------------------------------

FLOOD = 30


@pytest.mark.parametrize("method,kind", [("INVITE", "invite"), ("REGISTER", "register"),
                                         ("OPTIONS", "options")])
def test_a_flood_gets_503_with_retry_after_and_others_are_served(pbx, method, kind):
    pbx.store.limit_set(kind, "1")                  # 1 a second: 10 in any 10 s
    budget = limits.WINDOW
    flooder = Peer(pbx, ip=FLOODER)
    # Not an extension that exists: nothing rings, nothing is bound.
    ruri = f"sip:{pbx.address}" if method == "OPTIONS" else None
    replies = []
    for _ in range(FLOOD):
        callid = flooder.request(method, to_user="999", from_user="299", ruri=ruri)
        replies.append(flooder.final(callid))
    statuses = [status(r) for r in replies]
    assert all(not s.startswith("SIP/2.0 503") for s in statuses[:budget]), statuses
    refused = [r for r in replies if status(r) == "SIP/2.0 503 Service Unavailable - too many requests"]
    assert len(refused) >= FLOOD - budget - 1 and status(replies[-1]).startswith("SIP/2.0 503")
    assert all(f"Retry-After: {limits.WINDOW}" in r for r in refused)
    # Another host's same request is served meanwhile.
    other = Peer(pbx, ip="127.0.0.1")
    callid = other.request(method, to_user="999", from_user="299", ruri=ruri)
    assert not status(other.final(callid)).startswith("SIP/2.0 503")
    # The refusals were not logged one by one: at most a line per worker.
    log = (pbx.cfg.var / "log" / "kamailio.log").read_text(errors="replace")
    lines = [line for line in log.splitlines()
             if f"503 to {method} from {FLOODER}:{flooder.port}" in line]
    assert 1 <= len(lines) <= 8, lines
    flooder.close()
    other.close()


def test_a_trunk_is_never_rate_limited(pbx):
    pbx.store.limit_set("invite", "1")
    pbx.store.limit_set("options", "1")
    trunk = Peer(pbx, ip="127.0.0.1", port=pbx.trunk_port)
    for _ in range(limits.WINDOW + 10):
        for method, ruri in (("INVITE", None), ("OPTIONS", f"sip:{pbx.address}")):
            callid = trunk.request(method, to_user="999", ruri=ruri)
            assert status(trunk.final(callid)) in ("SIP/2.0 404 Not Found", "SIP/2.0 200 OK")
    trunk.close()


def test_limits_are_shown_and_set_with_the_cli(pbx):
    env = {**os.environ, "VPBX_REDIS_URL": pbx.cfg.redis_url, "VPBX_VAR": str(pbx.cfg.var)}

    def vpbx(*args):
        return subprocess.run([str(ROOT / "scripts" / "vpbx"), *args], capture_output=True,
                              text=True, env=env, timeout=20)

    shown = vpbx("limits")
    assert shown.returncode == 0
    assert shown.stdout.splitlines() == [f"{k} = {limits.DEFAULT_RATES[k]}" for k in limits.KINDS]
    assert vpbx("limits", "invite", "50").returncode == 0
    assert pbx.redis.hget("vpbx:limits", "invite") == "50"
    bad = vpbx("limits", "invite", "fast")
    assert bad.returncode == 2 and "invite takes requests a second" in bad.stderr
    assert vpbx("limits", "bye", "5").returncode == 2
    assert vpbx("limits", "invite").returncode == 2
    assert pbx.redis.hget("vpbx:limits", "invite") == "50"
