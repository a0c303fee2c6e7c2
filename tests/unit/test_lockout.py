import pytest

from vpbx.core import lockout
from vpbx.core.lockout import Limits, refused

LIMITS = Limits(failures=3, window=60, lock=120)


def test_defaults():
    assert Limits() == Limits(failures=10, window=600, lock=900)


def test_limits_from_redis_fall_back_to_defaults_on_bad_values():
    assert Limits.from_fields({}) == Limits()
    assert Limits.from_fields({"failures": "5", "window": "30", "lock": "60"}) == Limits(5, 30, 60)
    assert Limits.from_fields({"failures": "0", "window": "soon", "lock": "-1"}) == Limits()
    assert Limits.from_fields({"failures": "1001"}).failures == 10


@pytest.mark.parametrize("src,ext,ip,registered,expected", [
    (0, 0, "192.0.2.7", "", False),
    (2, 2, "192.0.2.7", "", False),                        # below the limit
    (3, 0, "192.0.2.7", "", True),                         # the source is locked
    (3, 0, "192.0.2.1", "udp:192.0.2.1:5060", True),       # ... even where the extension is registered
    (0, 3, "192.0.2.7", "", True),                         # the extension is locked
    (0, 3, "192.0.2.7", "udp:192.0.2.1:5060", True),       # ... for anyone but its phone
    (0, 9, "192.0.2.1", "udp:192.0.2.1:5060", False),      # its phone (registered from that IP)
    (0, 9, "192.0.2.1", "tcp:192.0.2.1:40000", False),     # ... from another port (NAT rebinding)
    (0, 3, "2001:db8::1", "udp:[2001:db8::1]:5060", False),
    (0, 3, "2001:db8::2", "udp:[2001:db8::1]:5060", True),
])
def test_refused(src, ext, ip, registered, expected):
    assert refused(src, ext, LIMITS, ip, registered) is expected


@pytest.mark.parametrize("src,ip", [
    ("udp:127.0.0.1:5060", "127.0.0.1"), ("tcp:[::1]:5060", "::1"), ("", ""),
])
def test_source_ip(src, ip):
    assert lockout.source_ip(src) == ip


def test_ip_address_typed_by_the_operator():
    assert lockout.ip_address("127.0.0.7") == "127.0.0.7"
    assert lockout.ip_address("[2001:DB8::1]") == "2001:db8::1"
    with pytest.raises(ValueError, match="not an IP address"):
        lockout.ip_address("host.example")


def test_limit_typed_by_the_operator():
    assert lockout.limit("failures", "5") == 5
    with pytest.raises(ValueError, match="from 1 to 1000"):
        lockout.limit("failures", "0")
    with pytest.raises(ValueError, match="unknown limit"):
        lockout.limit("tries", "5")
