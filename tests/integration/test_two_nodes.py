"""Two proxy nodes share Redis and rtpengine: an extension registered through one node is
called through the other (registrations live in Redis, not in a node)."""
import pytest

from vpbx.tooling import stack

from calls import callee, caller, register, talk
from conftest import PASSWORD, TENANT
from harness import free_port, tm_current
from sipclient import SipClient, digest


@pytest.fixture(scope="module")
def node2(running_stack, tmp_path_factory):
    node1 = running_stack
    cfg = stack.Config.from_env({
        "VPBX_VAR": str(tmp_path_factory.mktemp("node2")),
        "VPBX_SIP_PORT": str(free_port()),
        "VPBX_DTMF_PORT": str(free_port()),
        "VPBX_REDIS_URL": node1.redis_url,
        "VPBX_RTPE_ADDR": node1.rtpe,
        "VPBX_CHILDREN": "2",
        # Cluster nodes share the name they record-route with; here node 1's address.
        "VPBX_ALIASES": f"127.0.0.1:{node1.sip_port}",
    })
    assert [name for name, *_ in stack.daemons(cfg)] == ["kamailio"]
    stack.up(cfg, say=lambda _: None)
    yield cfg
    stack.down(cfg, say=lambda _: None)


def test_registered_through_one_node_called_through_the_other(pbx, node2):
    b = callee(pbx, "201")
    register(pbx, "201", b.port, proxy=f"127.0.0.1:{node2.sip_port}").passed()
    a = caller(pbx, "200", "201", password=PASSWORD)    # through node 1
    talk(pbx, a, b)
    assert tm_current(node2) == 0


def test_a_nonce_of_one_node_is_genuine_on_the_other(pbx, node2, running_stack):
    # Both nodes make nonces with the secret kept in Redis (vpbx:auth_secret): node 2 takes
    # node 1's nonce as genuine but stale (nonce counts are node-local) and challenges
    # again with stale=true, so a phone recomputes without asking for the password.
    one, two = SipClient(running_stack.sip_port), SipClient(node2.sip_port)
    try:
        challenge = one.request("REGISTER", "200", TENANT).challenge
        for nonce, stale in ((challenge["nonce"], "true"), (forged(challenge["nonce"]), None)):
            credentials = digest("REGISTER", f"sip:{TENANT}", "200", PASSWORD,
                                 {**challenge, "nonce": nonce})
            answer = two.request("REGISTER", "200", TENANT,
                                 authorization=f"Authorization: {credentials}\r\n")
            assert answer.code == 401 and answer.challenge.get("stale") == stale, answer.text
        assert pbx.redis.keys("vpbx:loc:*") == [] and pbx.redis.keys("vpbx:authfail:*") == []
        assert two.login("REGISTER", "200", TENANT, PASSWORD)[1].code == 200
        pbx.calls.unbind(TENANT, "200")
    finally:
        one.close()
        two.close()


def forged(nonce):
    """The nonce with one character changed: no node made it."""
    return nonce[:4] + ("A" if nonce[4] != "A" else "B") + nonce[5:]
