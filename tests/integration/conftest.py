"""A real vpbx stack (private Redis, rtpengine, Kamailio) on non-default ports for the whole run,
re-provisioned before and checked for leaks after every test."""
import os
from pathlib import Path

import pytest

from vpbx.adapters.redis import resp
from vpbx.tooling import stack
from vpbx.adapters.redis.provisioning_store import ProvisioningStore
from vpbx.adapters.redis.store import DUE, Store

from harness import free_port, sipp_port, tm_current, wait_for

TENANT = "t1.test"
OTHER_TENANT = "t2.test"
PASSWORD = "s3cret"


class Pbx:
    # Set by the pbx fixture: the trunks' SIPp ports and the test's own directory.
    trunk_port: int
    outbound_port: int
    workdir: Path

    def __init__(self, cfg):
        self.cfg = cfg
        self.redis = cfg.redis()
        self.rtpe_redis = cfg.rtpe_redis()                         # rtpengine's sessions
        self.store = ProvisioningStore(self.redis)                  # as scripts/vpbx provisions
        self.calls = Store(resp.Client.from_url(cfg.redis_url))    # the proxy's per-call store
        self.address = f"127.0.0.1:{cfg.sip_port}"

    def provision(self, trunk_port, outbound_port):
        for key in self.redis.scan_iter("vpbx:*"):
            if key != stack.AUTH_SECRET_KEY:    # the running nodes' nonce secret
                self.redis.delete(key)
        s = self.store
        s.tenant_add(TENANT)
        s.ext_add(TENANT, "200", PASSWORD)     # needs digest auth
        s.ext_add(TENANT, "201")               # open
        s.ext_add(TENANT, "202")               # open, never registered
        s.trunk_add(TENANT, f"127.0.0.1:{trunk_port}")
        s.trunk_add(TENANT, f"127.0.0.1:{outbound_port}", outbound=True)
        s.tenant_add(OTHER_TENANT)
        s.ext_add(OTHER_TENANT, "300")

    def leaks(self):
        """What a finished call left behind: Redis call keys (record, typing state, pending
        digit timeouts), rtpengine calls and the sessions it keeps in its own Redis database,
        tm transactions."""
        redis = self.store.call_keys() + sorted(self.redis.scan_iter("vpbx:dtmf:{*"))
        redis += self.redis.zrange(DUE, 0, -1)
        return {"redis": redis, "rtpengine": self.cfg.ng().calls(),
                "rtpengine_redis": sorted(self.rtpe_redis.scan_iter()), "tm": tm_current(self.cfg)}


@pytest.fixture(scope="session")
def running_stack(tmp_path_factory):
    env = {
        "VPBX_VAR": str(tmp_path_factory.mktemp("var")),
        "VPBX_SIP_PORT": str(free_port()),
        "VPBX_DTMF_PORT": str(free_port()),     # rtpengine's DTMF reports
        "VPBX_REDIS_PORT": str(free_port()),
        "VPBX_RTPE_PORT": str(free_port()),
        # Another range beside a running suite (another work tree): VPBX_TEST_RTP_PORTS.
        "VPBX_RTP_PORTS": os.environ.get("VPBX_TEST_RTP_PORTS", "31000-31999"),
        "VPBX_CHILDREN": "2",
    }
    cfg = stack.Config.from_env(env)
    stack.up(cfg, say=lambda _: None)
    yield cfg
    stack.down(cfg, say=lambda _: None)


@pytest.fixture
def pbx(running_stack, tmp_path):
    pbx = Pbx(running_stack)
    pbx.trunk_port, pbx.outbound_port = sipp_port(), sipp_port()     # SIPp parties bind them
    pbx.provision(pbx.trunk_port, pbx.outbound_port)
    pbx.workdir = tmp_path
    yield pbx
    empty = {"redis": [], "rtpengine": [], "rtpengine_redis": [], "tm": 0}
    try:
        wait_for(lambda: pbx.leaks() == empty, timeout=12, what="no leaks")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; left after the wait: {pbx.leaks()}") from None


@pytest.fixture
def pbx_transfer(pbx):
    """The tenant with "Transfer by PBX" on and an extension 100 to type codes for."""
    pbx.store.setting_set(TENANT, "pbx_transfer", "on")
    pbx.store.ext_add(TENANT, "100")
    return pbx
