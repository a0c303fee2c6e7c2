"""REGISTER: open extensions, digest auth, wrong password refused; bindings in Redis, one per
extension, with lifetimes, queries and removal."""
import re

import pytest

from calls import probe, register
from harness import Sipp
from conftest import PASSWORD, TENANT
from harness import free_port


def binding(pbx, ext):
    """The extension's registration as kept in Redis (where every proxy node finds it)."""
    return pbx.redis.hgetall(f"vpbx:loc:{TENANT}:{ext}")


def test_open_extension_registers_without_challenge(pbx):
    contact = free_port()
    reg = register(pbx, "201", contact)
    reg.passed()
    assert "401 Unauthorized" not in reg.messages()
    assert binding(pbx, "201")["contact"] == f"sip:201@127.0.0.1:{contact}"


def test_protected_extension_registers_after_digest_challenge(pbx):
    contact = free_port()
    reg = register(pbx, "200", contact, password=PASSWORD)
    reg.passed()
    assert "SIP/2.0 401 Unauthorized" in reg.messages()
    assert binding(pbx, "200")["contact"] == f"sip:200@127.0.0.1:{contact}"
    assert 290 <= pbx.redis.ttl(f"vpbx:loc:{TENANT}:200") <= 300


def test_wrong_password_is_refused_and_nothing_is_bound(pbx):
    contact = free_port()
    register(pbx, "200", contact, password="wrong", scenario="register_refused").passed()
    assert binding(pbx, "200") == {}


def test_unknown_tenant_cannot_register(pbx):
    # Challenged like a protected extension (no enumeration), then refused like a wrong password.
    reg = register(pbx, "201", free_port(), domain="nowhere.test", scenario="register_refused")
    reg.passed()
    assert re.search(r'^WWW-Authenticate: Digest realm="nowhere.test"', reg.messages(), re.M)
    assert re.search(r"^SIP/2.0 403 Forbidden\r?$", reg.messages(), re.M)
    assert pbx.redis.keys("vpbx:loc:*") == []


def register_once(pbx, contact, expires, user="201", contact_header="Contact"):
    """Send one REGISTER; return (final status line, the whole answer)."""
    reg = Sipp(pbx.workdir, "register_once", pbx.address, name=f"register-once-{user}-{expires}",
               variables={"user": user, "domain": TENANT, "contact_header": contact_header,
                          "contact": contact, "expires": expires})
    reg.passed()
    answer = reg.received("SIP/2.0 ")[-1]
    return answer.split("\n", 1)[0].strip(), answer


def test_register_query_and_unregister(pbx):
    contact = f"<sip:201@127.0.0.1:{free_port()}>"
    status, answer = register_once(pbx, contact, 120)
    assert status == "SIP/2.0 200 OK" and f"Contact: {contact};expires=120" in answer
    status, answer = register_once(pbx, "none", 120, contact_header="X-No-Contact")   # a query
    assert status == "SIP/2.0 200 OK" and f"Contact: {contact};expires=" in answer
    status, answer = register_once(pbx, contact, 0)
    assert status == "SIP/2.0 200 OK" and "Contact:" not in answer
    assert binding(pbx, "201") == {}
    assert probe(pbx, "202", "201").startswith("480")


def test_wildcard_unregisters(pbx):
    register_once(pbx, f"<sip:201@127.0.0.1:{free_port()}>", 300)
    assert register_once(pbx, "*", 0)[0] == "SIP/2.0 200 OK"
    assert binding(pbx, "201") == {}


def test_too_brief_registration_is_423_with_min_expires(pbx):
    status, answer = register_once(pbx, f"<sip:201@127.0.0.1:{free_port()}>", 10)
    assert status == "SIP/2.0 423 Interval Too Brief" and "Min-Expires: 60" in answer
    assert binding(pbx, "201") == {}


@pytest.mark.parametrize("contact,expires", [
    ("<sip:201@127.0.0.1:5998>, <sip:201@127.0.0.1:5999>", 300),    # two bindings
    ("<mailto:201@t1.test>", 300),
    ("*", 300),                                                      # wildcard needs Expires: 0
    ("<sip:201@127.0.0.1:5999>", "soon"),
])
def test_bad_registrations_are_400(pbx, contact, expires):
    assert register_once(pbx, contact, expires)[0].startswith("SIP/2.0 400")
    assert binding(pbx, "201") == {}


def test_long_registration_is_capped_at_an_hour(pbx):
    status, answer = register_once(pbx, "<sip:201@127.0.0.1:5999>", 86400)
    assert "Contact: <sip:201@127.0.0.1:5999>;expires=3600" in answer
