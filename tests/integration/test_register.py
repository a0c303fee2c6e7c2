"""REGISTER: open extensions, digest auth, wrong password refused; the binding is used for calls."""
from calls import register
from conftest import PASSWORD, TENANT
from harness import free_port, kamcmd


def test_open_extension_registers_without_challenge(pbx):
    contact = free_port()
    reg = register(pbx, "201", contact)
    reg.passed()
    assert "401 Unauthorized" not in reg.messages()
    assert f"127.0.0.1:{contact}" in kamcmd(pbx.cfg, "ul.lookup", "location", f"201@{TENANT}")
    # Bindings live in Redis, where every proxy node finds them.
    assert pbx.redis.keys(f"location:usrdom::201:{TENANT}")
    assert any(f"127.0.0.1:{contact}" in str(pbx.redis.hgetall(key))
               for key in pbx.redis.keys("location:entry::*"))


def test_protected_extension_registers_after_digest_challenge(pbx):
    contact = free_port()
    reg = register(pbx, "200", contact, password=PASSWORD)
    reg.passed()
    assert "SIP/2.0 401 Unauthorized" in reg.messages()
    assert f"127.0.0.1:{contact}" in kamcmd(pbx.cfg, "ul.lookup", "location", f"200@{TENANT}")


def test_wrong_password_is_refused_and_nothing_is_bound(pbx):
    contact = free_port()
    register(pbx, "200", contact, password="wrong", scenario="register_refused").passed()
    assert f"127.0.0.1:{contact}" not in kamcmd(pbx.cfg, "ul.lookup", "location", f"200@{TENANT}")


def test_unknown_tenant_cannot_register(pbx):
    reg = register(pbx, "201", free_port(), domain="nowhere.test", scenario="register_refused")
    assert reg.wait() != 0
    assert "SIP/2.0 403 Forbidden - unknown tenant" in reg.messages()
