"""config.Config: the VPBX_* environment of scripts/vpbx and the proxy (one default each)."""
import ast
import dataclasses
import re
from pathlib import Path

import pytest

from vpbx import config
from vpbx.config import Config, ConfigError

ROOT = Path(__file__).resolve().parents[2]

SECRET = "s" * 32


def test_defaults():
    cfg = Config.from_env({})
    assert cfg == Config()
    assert (cfg.listen, cfg.control, cfg.sip_port, cfg.dtmf_port) == ("127.0.0.1", "127.0.0.1", 5060, 5070)
    assert cfg.redis_url == "redis://127.0.0.1:16379/0" and cfg.private_redis_port == 16379
    assert cfg.rtpe == "127.0.0.1:2223" and cfg.private_rtpe
    assert (cfg.rtpe_host, cfg.rtpe_port) == ("127.0.0.1", 2223)
    assert cfg.dtmf_socket == "127.0.0.1:5070" and cfg.host == "127.0.0.1"
    assert cfg.rtp_ports == (30000, 30999) and cfg.children == 4
    assert cfg.redis_db == 0 and cfg.rtpe_redis_db == 1
    assert cfg.aliases == () and cfg.auth_secret == ""
    assert cfg.var == ROOT / "var"
    assert cfg.sounds == ROOT / "var" / "sounds"
    assert cfg.rpc_sock == ROOT / "var" / "run" / "kamailio_rpc.sock"


def test_empty_means_unset_and_other_variables_are_ignored():
    env = {name: "" for name, _, _ in config.settings()}
    assert Config.from_env({**env, "VPBX_TEST_RTP_PORTS": "x", "PATH": "/bin"}) == Config()


def test_overrides():
    cfg = Config.from_env({
        "VPBX_LISTEN": "192.0.2.10", "VPBX_CONTROL_LISTEN": "10.0.0.1", "VPBX_SIP_PORT": "5080",
        "VPBX_DTMF_PORT": "5090", "VPBX_REDIS_URL": "redis://:pw@10.0.0.2:6380/3",
        "VPBX_REDIS_PORT": "16400", "VPBX_RTPE_PORT": "2300", "VPBX_RTPE_ADDR": "10.0.0.3:2224",
        "VPBX_RTP_PORTS": "40000-40999", "VPBX_CHILDREN": "8", "VPBX_RTPE_REDIS_DB": "3",
        "VPBX_ALIASES": "a.example:5060, 10.0.0.9:5060",
        "VPBX_AUTH_SECRET": SECRET, "VPBX_VAR": "/srv/vpbx", "VPBX_SOUNDS": "/srv/sounds",
        "VPBX_RPC_SOCK": "/run/vpbx/rpc.sock"})
    assert (cfg.listen, cfg.control, cfg.sip_port, cfg.dtmf_port) == ("192.0.2.10", "10.0.0.1", 5080, 5090)
    assert cfg.redis_url == "redis://:pw@10.0.0.2:6380/3" and cfg.private_redis_port == 0
    assert cfg.redis_port == 16400 and cfg.ng_port == 2300
    assert cfg.redis_db == 3 and cfg.rtpe_redis_db == 3       # no rtpengine of its own
    assert cfg.rtpe == "10.0.0.3:2224" and not cfg.private_rtpe
    assert cfg.dtmf_socket == "10.0.0.1:5090"
    assert cfg.rtp_ports == (40000, 40999) and cfg.children == 8
    assert cfg.aliases == ("a.example:5060", "10.0.0.9:5060") and cfg.auth_secret == SECRET
    assert (cfg.var, cfg.sounds, cfg.rpc_sock) == (Path("/srv/vpbx"), Path("/srv/sounds"),
                                                   Path("/run/vpbx/rpc.sock"))


def test_paths_under_var_follow_it_and_are_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = Config.from_env({"VPBX_VAR": "here"})
    assert cfg.var == tmp_path / "here"
    assert cfg.sounds == tmp_path / "here" / "sounds"
    assert cfg.rpc_sock == tmp_path / "here" / "run" / "kamailio_rpc.sock"


def test_ipv6():
    cfg = Config.from_env({"VPBX_LISTEN": "::1", "VPBX_CONTROL_LISTEN": "[fd00::1]",
                           "VPBX_RTPE_ADDR": "[fd00::2]:2223"})
    assert cfg.host == "[::1]" and cfg.control == "fd00::1"
    assert cfg.dtmf_socket == "[fd00::1]:5070"
    assert (cfg.rtpe_host, cfg.rtpe_port, cfg.rtpe) == ("fd00::2", 2223, "[fd00::2]:2223")


@pytest.mark.parametrize("env", [
    {},
    {"VPBX_REDIS_URL": "redis://10.0.0.2:6380/1", "VPBX_RTPE_ADDR": "[::1]:2224",
     "VPBX_ALIASES": "a:1,b:2", "VPBX_AUTH_SECRET": SECRET, "VPBX_VAR": "/tmp/v",
     "VPBX_RTP_PORTS": "2000-2001"},
    {"VPBX_RTPE_REDIS_DB": "off"},
    {"VPBX_RTPE_REDIS_DB": "7"},
])
def test_to_env_gives_the_same_configuration(env):
    """What the stack hands Kamailio: the proxy reads the very configuration back."""
    cfg = Config.from_env(env)
    passed = cfg.to_env()
    assert set(passed) == {name for name, _, _ in config.settings()}
    assert all(isinstance(value, str) for value in passed.values())
    assert Config.from_env(passed) == cfg


@pytest.mark.parametrize("env,message", [
    ({"VPBX_SIP_PORT": "sip"}, "VPBX_SIP_PORT takes a whole number, not 'sip'"),
    ({"VPBX_SIP_PORT": "-1"}, "VPBX_SIP_PORT takes a whole number"),
    ({"VPBX_DTMF_PORT": "65536"}, "VPBX_DTMF_PORT: 65536 is no port"),
    ({"VPBX_REDIS_PORT": "0"}, "VPBX_REDIS_PORT: 0 is no port"),
    ({"VPBX_RTPE_PORT": "2.5"}, "VPBX_RTPE_PORT takes a whole number"),
    ({"VPBX_LISTEN": "pbx.example"}, "VPBX_LISTEN takes an IP address, not 'pbx.example'"),
    ({"VPBX_CONTROL_LISTEN": "127.0.0"}, "VPBX_CONTROL_LISTEN takes an IP address"),
    ({"VPBX_REDIS_URL": "rediss://h:6379/0"}, "VPBX_REDIS_URL takes redis://"),
    ({"VPBX_REDIS_URL": "redis://h:port/0"}, "VPBX_REDIS_URL takes redis://"),
    ({"VPBX_REDIS_URL": "redis://h/zero"}, "VPBX_REDIS_URL takes redis://"),
    ({"VPBX_RTPE_ADDR": "10.0.0.3"}, "VPBX_RTPE_ADDR takes IP:PORT"),
    ({"VPBX_RTPE_ADDR": "rtpe.example:2223"}, "VPBX_RTPE_ADDR takes an IP address"),
    ({"VPBX_RTPE_ADDR": "10.0.0.3:99999"}, "VPBX_RTPE_ADDR: 99999 is no port"),
    ({"VPBX_RTP_PORTS": "30000"}, "VPBX_RTP_PORTS takes LOW-HIGH, not '30000'"),
    ({"VPBX_RTP_PORTS": "30999-30000"}, "VPBX_RTP_PORTS takes LOW-HIGH with LOW below HIGH"),
    ({"VPBX_RTP_PORTS": "0-100"}, "VPBX_RTP_PORTS: 0 is no port"),
    ({"VPBX_RTP_PORTS": "a-b"}, "VPBX_RTP_PORTS takes a whole number"),
    ({"VPBX_CHILDREN": "0"}, "VPBX_CHILDREN takes 1 to 1024, not 0"),
    ({"VPBX_CHILDREN": "many"}, "VPBX_CHILDREN takes a whole number"),
    ({"VPBX_ALIASES": "a.example:5060,b example"}, "VPBX_ALIASES takes comma-separated host:port"),
    ({"VPBX_AUTH_SECRET": "too short"}, "VPBX_AUTH_SECRET takes 32 to 256 characters"),
    ({"VPBX_AUTH_SECRET": "x" * 257}, "VPBX_AUTH_SECRET takes 32 to 256 characters"),
    ({"VPBX_AUTH_SECRET": "ä" * 40}, "VPBX_AUTH_SECRET takes 32 to 256 characters"),
    ({"VPBX_AUTH_SECRET": SECRET + "\n"}, "VPBX_AUTH_SECRET takes 32 to 256 characters"),
    ({"VPBX_ALIASES": "a.example:5060\nb:1"}, "VPBX_ALIASES takes comma-separated host:port"),
    ({"VPBX_DTMF_PORT": "5060"}, "VPBX_DTMF_PORT must differ from VPBX_SIP_PORT on one address"),
    ({"VPBX_RTPE_REDIS_DB": "16"}, "VPBX_RTPE_REDIS_DB takes 0 to 15 or off, not 16"),
    ({"VPBX_RTPE_REDIS_DB": "one"}, "VPBX_RTPE_REDIS_DB takes a whole number"),
    ({"VPBX_RTPE_REDIS_DB": "0"}, "VPBX_RTPE_REDIS_DB must differ from the proxy's Redis database (0)"),
    ({"VPBX_REDIS_URL": "redis://h:6379/1"},
     "VPBX_RTPE_REDIS_DB must differ from the proxy's Redis database (1)"),
])
def test_bad_values_are_refused_naming_the_variable(env, message):
    with pytest.raises(ConfigError) as caught:
        Config.from_env(env)
    assert str(caught.value).startswith(message)
    assert isinstance(caught.value, ValueError)         # scripts/vpbx: message, exit status 2


def test_rtpengine_may_keep_no_sessions():
    assert Config.from_env({"VPBX_RTPE_REDIS_DB": "off"}).rtpe_redis_db is None


def test_the_dtmf_port_may_equal_the_sip_port_on_another_address():
    cfg = Config.from_env({"VPBX_LISTEN": "127.0.0.2", "VPBX_DTMF_PORT": "5060"})
    assert cfg.dtmf_socket == "127.0.0.1:5060"


def test_a_bad_redis_url_is_not_echoed():
    """It may hold a password; error messages end up in logs."""
    with pytest.raises(ConfigError) as caught:
        Config.from_env({"VPBX_REDIS_URL": "rediss://:hunter2@h:6379/0"})
    assert "hunter2" not in str(caught.value)


def test_a_bad_secret_is_not_echoed():
    with pytest.raises(ConfigError) as caught:
        Config.from_env({"VPBX_AUTH_SECRET": "hunter2"})
    assert "hunter2" not in str(caught.value)


def test_direct_construction_is_checked_too():
    with pytest.raises(ConfigError, match="VPBX_CHILDREN"):
        Config(children=0)


def test_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        Config().sip_port = 1  # type: ignore[misc]


def test_every_field_is_one_variable_with_a_default():
    names = [f.metadata["env"] for f in dataclasses.fields(Config)]
    assert len(names) == len(set(names)) and all(n.startswith("VPBX_") for n in names)
    assert all(f.default is not dataclasses.MISSING for f in dataclasses.fields(Config))


def readme_table():
    """[(variable, default)] of README's "Ports and addresses" table."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Ports and addresses", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        m = re.match(r"^\| `(VPBX_[A-Z_]+)` \| (.+?) \| .+ \|$", line)
        if m:
            rows.append((m.group(1), m.group(2)))
    return rows


def test_the_readme_table_lists_exactly_the_settings_and_their_defaults():
    assert readme_table() == [(name, shown) for name, shown, _ in config.settings()]


def test_every_variable_the_code_reads_is_a_setting():
    """No VPBX_* variable is read outside config.py (the tests' own VPBX_TEST_*/VPBX_FUZZ_*
    aside): one place, one default."""
    package = ROOT / "kemi" / "vpbx"
    for path in package.rglob("*.py"):
        if path.name == "config.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                assert not re.fullmatch(r"VPBX_[A-Z_]+", node.value), \
                    f"{path.name} names {node.value}: read it through config.Config"
