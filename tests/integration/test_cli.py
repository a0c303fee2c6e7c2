"""scripts/vpbx provisioning: configuration is Redis keys; bad input is refused and writes nothing."""
import os
import subprocess
from pathlib import Path

import pytest

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
    assert pbx.store.trunk_refer("127.0.0.1:5998") == "pass"
    assert pbx.store.trunk_refer("127.0.0.1:5999") == "terminate"
    shown = vpbx("show", "acme.example").stdout
    assert "pbx_transfer = off" in shown and "outbound_trunk = 127.0.0.1:5999" in shown
    assert "transfer_external = ''" in shown        # empty: extensions only
    assert vpbx("set", "acme.example", "pbx_transfer", "on").stdout.strip() == "acme.example: pbx_transfer = on"
    assert vpbx("set", "acme.example", "transfer_hold_media", "ringback").returncode == 0
    shown = vpbx("show", "acme.example").stdout
    assert "pbx_transfer = on" in shown and "transfer_hold_media = ringback" in shown
    # The password itself is never stored, only the digest HA1.
    assert "pw" not in pbx.redis.hvals("vpbx:exts:acme.example")
    assert vpbx("tenant", "del", "acme.example").returncode == 0
    assert pbx.redis.keys("*acme.example*") == []
    assert "127.0.0.1:5999" not in vpbx("trunk", "list").stdout
    assert pbx.redis.hgetall("vpbx:trunk_refer") == {}
