"""scripts/vpbx provisioning: configuration is Redis keys; bad input is refused and writes nothing."""
import os
import subprocess
from pathlib import Path

import pytest

from sipclient import SipClient

VPBX = Path(__file__).resolve().parents[2] / "scripts" / "vpbx"


@pytest.fixture
def vpbx(pbx):
    env = {**os.environ, "VPBX_REDIS_URL": pbx.cfg.redis_url, "VPBX_VAR": str(pbx.cfg.var)}

    def run(*args):
        return subprocess.run([str(VPBX), *args], env=env, capture_output=True, text=True, timeout=20)
    return run


def snapshot(pbx):
    return {key: pbx.redis.dump(key) for key in pbx.redis.keys("*")}


@pytest.mark.parametrize("args,message", [
    (["tenant", "add", "not a domain"], "not a valid SIP domain"),
    (["tenant", "add", "t1.test"], "exists already"),
    (["tenant", "del", "nope.test"], "unknown tenant"),
    (["ext", "add", "nope.test", "100"], "unknown tenant"),
    (["ext", "add", "t1.test", "1"], "not a valid extension"),
    (["ext", "add", "t1.test", "201"], "exists already"),
    (["ext", "add", "t1.test", "210", "--password", "has space"], "password"),
    (["ext", "del", "t1.test", "299"], "no extension 299"),
    (["trunk", "add", "t1.test", "carrier.example:5060"], "not IP:PORT"),
    (["trunk", "del", "t2.test", "127.0.0.1:1"], "no trunk"),
    (["set", "t1.test", "pbx_transfer", "maybe"], "on or off"),
    (["set", "t1.test", "colour", "blue"], "unknown setting"),
    (["set", "nope.test", "pbx_transfer", "on"], "unknown tenant"),
    (["show", "nope.test"], "unknown tenant"),
    (["lock", "clear", "src", "host.example"], "not an IP address"),
    (["lock", "clear", "src", "127.0.0.99"], "no failed logins recorded for source 127.0.0.99"),
    (["lock", "clear", "ext", "t1.test"], "2 argument(s)"),
    (["lock", "clear", "all", "now"], "0 argument(s)"),
    (["lock", "set", "failures", "0"], "from 1 to 1000"),
    (["lock", "set", "tries", "3"], "unknown limit"),
])
def test_bad_input_exits_non_zero_with_a_message_and_writes_nothing(pbx, vpbx, args, message):
    before = snapshot(pbx)
    result = vpbx(*args)
    assert result.returncode == 2
    assert message in result.stderr and result.stderr.startswith("vpbx: ")
    assert snapshot(pbx) == before


def test_trunk_of_one_tenant_cannot_be_claimed_by_another(pbx, vpbx):
    result = vpbx("trunk", "add", "t2.test", f"127.0.0.1:{pbx.trunk_port}")
    assert result.returncode == 2 and "already a trunk of tenant t1.test" in result.stderr


def test_provisioning_round_trip(pbx, vpbx):
    assert vpbx("tenant", "add", "Acme.Example").returncode == 0
    assert "acme.example" in vpbx("tenant", "list").stdout.split()
    assert vpbx("ext", "add", "acme.example", "100", "--password", "pw").returncode == 0
    assert vpbx("ext", "add", "acme.example", "101").returncode == 0
    assert vpbx("ext", "list", "acme.example").stdout.split("\n")[:2] == ["100\tpassword", "101\topen"]
    assert vpbx("trunk", "add", "acme.example", "127.0.0.1:5999", "--outbound").returncode == 0
    assert "127.0.0.1:5999\tacme.example\toutbound" in vpbx("trunk", "list").stdout
    added = vpbx("trunk", "add", "acme.example", "127.0.0.1:5998", "--refer", "pass")
    assert added.returncode == 0 and "REFER: pass" in added.stdout
    assert pbx.calls.trunk_refer("127.0.0.1:5998") == "pass"
    assert pbx.calls.trunk_refer("127.0.0.1:5999") == "terminate"
    shown = vpbx("show", "acme.example").stdout
    assert "pbx_transfer = off" in shown and "outbound_trunk = 127.0.0.1:5999" in shown
    assert "transfer_external = ''" in shown        # empty: extensions only
    assert (vpbx("set", "acme.example", "pbx_transfer", "on").stdout.strip()
            == "acme.example: pbx_transfer = on")
    assert vpbx("set", "acme.example", "transfer_hold_media", "ringback").returncode == 0
    shown = vpbx("show", "acme.example").stdout
    assert "pbx_transfer = on" in shown and "transfer_hold_media = ringback" in shown
    # The password itself is never stored, only the digest HA1.
    assert "pw" not in pbx.redis.hvals("vpbx:exts:acme.example")
    assert vpbx("tenant", "del", "acme.example").returncode == 0
    assert pbx.redis.keys("*acme.example*") == []
    assert "127.0.0.1:5999" not in vpbx("trunk", "list").stdout
    assert pbx.redis.hgetall("vpbx:trunk_refer") == {}


def test_lock_list_and_clear_round_trip(pbx, vpbx):
    assert vpbx("lock", "set", "failures", "2").stdout.strip() == "lock failures = 2"
    stranger = SipClient(pbx.cfg.sip_port, "127.0.0.7")
    try:
        for _ in range(2):
            assert stranger.login("REGISTER", "200", "t1.test", "wrong")[1].code == 403
        assert stranger.request("REGISTER", "200", "t1.test").status_line == "SIP/2.0 403 Forbidden"
        listed = vpbx("lock", "list").stdout.splitlines()
        assert listed[0] == "limits: 2 failures within 600 s lock for 900 s"
        rows = sorted(line.split("\t")[:4] for line in listed[1:])
        assert rows == [["ext", "200@t1.test", "locked", "2 failures"],
                        ["src", "127.0.0.7", "locked", "2 failures"]]
        cleared = vpbx("lock", "clear", "src", "127.0.0.7")
        assert cleared.returncode == 0 and cleared.stdout.strip() == "cleared src 127.0.0.7"
        # The extension is still locked for a source it is not registered from ...
        assert stranger.request("REGISTER", "200", "t1.test").code == 403
        assert vpbx("lock", "clear", "ext", "T1.test", "200").returncode == 0
        # ... and with both cleared the stranger is challenged again.
        assert stranger.request("REGISTER", "200", "t1.test").code == 401
        assert stranger.login("REGISTER", "200", "t1.test", "wrong")[1].code == 403
        assert vpbx("lock", "clear", "all").stdout.strip() == "cleared 2 source(s) and extension(s)"
        assert pbx.redis.keys("vpbx:authfail:*") == []
        assert vpbx("lock", "list").stdout.splitlines()[1:] == []
    finally:
        stranger.close()


def test_a_bad_auth_secret_is_refused_before_anything_starts(tmp_path):
    env = {**os.environ, "VPBX_VAR": str(tmp_path / "var"), "VPBX_AUTH_SECRET": "too short"}
    result = subprocess.run([str(VPBX), "up"], env=env, capture_output=True, text=True, timeout=20)
    assert result.returncode == 2
    assert result.stderr.startswith("vpbx: VPBX_AUTH_SECRET takes 32 to 256 characters")
    assert not (tmp_path / "var").exists()


@pytest.mark.parametrize("args", [["show", "t1.test"], ["status"], ["ext", "list", "t1.test"]])
def test_output_into_a_closed_pipe_ends_quietly(pbx, args):
    """`vpbx status | head -0`: the reader is gone before the first line; the command ends
    with 141 (as a tool SIGPIPE ends), no traceback."""
    env = {**os.environ, "VPBX_REDIS_URL": pbx.cfg.redis_url, "VPBX_VAR": str(pbx.cfg.var)}
    read, write = os.pipe()
    os.close(read)
    try:
        done = subprocess.run([str(VPBX), *args], env=env, stdout=write,
                              stderr=subprocess.PIPE, text=True, timeout=20)
    finally:
        os.close(write)
    assert done.returncode == 141 and done.stderr == ""
