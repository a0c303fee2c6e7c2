"""Digest auth as an attacker meets it: no extension enumeration (every unknown or wrong
login answered alike), replayed credentials refused, failed logins locked out per source
and per extension (shared in Redis) without locking out the registered phone."""
import re

import pytest

from calls import register
from conftest import PASSWORD, TENANT
from harness import free_port
from sipclient import SipClient

STRANGER = "127.0.0.7"      # stands for a foreign host


@pytest.fixture
def client(pbx):
    clients = []

    def make(ip=STRANGER):
        clients.append(SipClient(pbx.cfg.sip_port, ip))
        return clients[-1]
    yield make
    for c in clients:
        c.close()


def binding(pbx, ext="200", domain=TENANT):
    return pbx.redis.hgetall(f"vpbx:loc:{domain}:{ext}")


def shape(response):
    """What a scanner could compare: status line, header names, the challenge without its
    nonce and with the realm (the domain it named) blanked."""
    challenge = {k: v for k, v in response.challenge.items() if k != "nonce"}
    challenge["realm"] = "*"
    return response.status_line, sorted(response.headers), challenge


LOGINS = [  # (user, domain, password, auth user): what a scanner tries
    ("200", TENANT, "wrong", None),             # protected extension, wrong password
    ("200", TENANT, PASSWORD, "201"),           # right password, but for another auth user
    ("299", TENANT, PASSWORD, None),            # no such extension
    ("200", "nowhere.test", PASSWORD, None),    # no such tenant
]


@pytest.mark.parametrize("method,challenge_code", [("REGISTER", 401), ("INVITE", 407)])
def test_unknown_and_wrong_logins_are_answered_alike(pbx, client, method, challenge_code):
    answers = []
    for user, domain, password, auth_user in LOGINS:
        first, second = client().login(method, user, domain, password, auth_user=auth_user,
                                       to_user="201" if method == "INVITE" else None)
        assert first.code == challenge_code and first.challenge["realm"] == domain
        assert first.challenge["qop"] == "auth"
        assert second.status_line == "SIP/2.0 403 Forbidden"
        answers.append((shape(first), shape(second)))
    assert all(answer == answers[0] for answer in answers), answers
    assert binding(pbx) == {} and binding(pbx, "299") == {}


def test_right_password_still_registers_and_calls_are_challenged(pbx, client):
    phone = client("127.0.0.1")
    first, second = phone.login("REGISTER", "200", TENANT, PASSWORD)
    assert (first.code, second.status_line) == (401, "SIP/2.0 200 OK")
    assert binding(pbx)["src"] == f"udp:127.0.0.1:{phone.port}"
    phone.request("REGISTER", "200", TENANT)        # (a query without credentials: 401)
    pbx.calls.unbind(TENANT, "200")


def authenticated_register(reg):
    """The REGISTER with credentials a SIPp phone sent (from its message trace)."""
    sent = [m for m in reg.sent("REGISTER ") if "Authorization:" in m]
    assert len(sent) == 1
    return sent[0].replace("\r\n", "\n").strip().replace("\n", "\r\n") + "\r\n\r\n"


def test_replayed_register_is_refused_and_changes_nothing(pbx, client):
    contact = free_port()
    phone = register(pbx, "200", contact, password=PASSWORD)
    phone.passed()
    captured = authenticated_register(phone)
    assert 'qop=auth' in captured and "nc=00000001" in captured
    before = binding(pbx)
    assert before["contact"] == f"sip:200@127.0.0.1:{contact}"

    attacker = client()
    hijack = re.sub(r"^Contact: .*$", f"Contact: <sip:200@{STRANGER}:{attacker.port}>",
                    captured, flags=re.M)
    for replay in (captured, hijack):
        answer = attacker.send(replay)
        assert answer.code == 401 and answer.challenge.get("stale") == "true", answer.text
        assert binding(pbx) == before
    assert pbx.redis.keys("vpbx:authfail:*") == []      # a replay is no guess

    again = register(pbx, "200", contact, password=PASSWORD, scenario="register")
    again.passed()
    assert binding(pbx)["contact"] == f"sip:200@127.0.0.1:{contact}"
    assert binding(pbx)["callid"] != before["callid"]
    pbx.calls.unbind(TENANT, "200")


def set_limits(pbx, failures=3, window=600, lock=900):
    pbx.redis.hset("vpbx:auth_lockout", mapping={"failures": failures, "window": window, "lock": lock})


def guess(client, ip, user="200", password="wrong", method="REGISTER"):
    """One failed login from ip -> the final answer."""
    return client(ip).login(method, user, TENANT, password, to_user="201")[1]


def test_source_is_locked_after_failed_logins_but_the_registered_phone_is_not(pbx, client):
    set_limits(pbx, failures=3, lock=900)
    phone = client("127.0.0.1")
    assert phone.login("REGISTER", "200", TENANT, PASSWORD)[1].code == 200
    registered = binding(pbx)

    for _ in range(3):
        assert guess(client, STRANGER).status_line == "SIP/2.0 403 Forbidden"
    assert 0 < pbx.redis.ttl(f"vpbx:authfail:src:{STRANGER}") <= 900
    # Locked: answered 403 before any challenge, for any name that needs digest auth,
    # REGISTER and INVITE, even with the right password.
    attacker = client()
    for method in ("REGISTER", "INVITE"):
        for user in ("200", "298"):
            answer = attacker.request(method, user, TENANT, to_user="201")
            assert answer.status_line == "SIP/2.0 403 Forbidden" and not answer.challenge
        first, second = attacker.login(method, "200", TENANT, PASSWORD, to_user="201")
        assert first.status_line == second.status_line == "SIP/2.0 403 Forbidden"
    assert binding(pbx) == registered
    # 200 had three failures too, so 200 is locked for other sources ...
    assert client("127.0.0.9").request("REGISTER", "200", TENANT).status_line == "SIP/2.0 403 Forbidden"
    assert client("127.0.0.9").request("REGISTER", "299", TENANT).code == 401     # (one failure)
    # ... but not for the phone, registered from 127.0.0.1 (here from a new port): it
    # calls (past the digest check: 202 is not registered) and re-registers.
    first, second = client("127.0.0.1").login("INVITE", "200", TENANT, PASSWORD, to_user="202")
    assert (first.code, second.status_line) == (407, "SIP/2.0 480 Temporarily Unavailable")
    first, second = client("127.0.0.1").login("REGISTER", "200", TENANT, PASSWORD)
    assert (first.code, second.code) == (401, 200)
    assert binding(pbx)["src"] != registered["src"]
    pbx.calls.unbind(TENANT, "200")


def test_extension_is_locked_by_failures_from_many_sources_known_or_not(pbx, client):
    set_limits(pbx, failures=3)
    for ip in ("127.0.0.10", "127.0.0.11", "127.0.0.12"):
        assert guess(client, ip, "200").code == 403
        assert guess(client, ip, "299").code == 403
    for user in ("200", "299"):     # a lock tells nothing about which extension exists
        answer = client("127.0.0.13").request("REGISTER", user, TENANT)
        assert answer.status_line == "SIP/2.0 403 Forbidden" and not answer.challenge
    assert client("127.0.0.13").request("REGISTER", "298", TENANT).code == 401
    assert pbx.redis.get(f"vpbx:authfail:ext:200@{TENANT}") == "3"
    assert pbx.redis.get(f"vpbx:authfail:ext:299@{TENANT}") == "3"
    assert binding(pbx) == {}


def test_failures_below_the_limit_and_open_extensions_lock_nothing(pbx, client):
    set_limits(pbx, failures=3)
    assert guess(client, STRANGER).code == 403
    assert guess(client, STRANGER).code == 403
    assert client().request("REGISTER", "200", TENANT).code == 401
    # An open extension is no digest check: neither counted nor locked.
    open_ext = client().request("REGISTER", "201", TENANT)
    assert open_ext.code == 200
    pbx.calls.unbind(TENANT, "201")
    assert pbx.redis.get(f"vpbx:authfail:src:{STRANGER}") == "2"


@pytest.mark.parametrize("credentials", [
    'Digest username="200"',                                        # no realm, nonce, response
    'Digest username="200", realm="t1.test", nonce="", uri="sip:t1.test", response="00"',
    'Basic MjAwOnMzY3JldA==',
    'Digest username="200", realm="t1.test", nonce="bm9uY2U=", uri="sip:t1.test", '
    'response="0123456789abcdef0123456789abcdef", qop=auth, nc=zz, cnonce="x"',
])
def test_malformed_credentials_get_one_clear_answer(pbx, client, credentials):
    stranger = client()
    answer = stranger.request("REGISTER", "200", TENANT,
                              authorization=f"Authorization: {credentials}\r\n")
    assert answer.code in (400, 401), answer.text
    stranger.sock.settimeout(0.5)
    with pytest.raises(OSError):        # one answer, not two
        stranger.sock.recv(65535)
    assert binding(pbx) == {}
