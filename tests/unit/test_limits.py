import pytest

from vpbx.core import limits
from vpbx.core.limits import Count


@pytest.mark.parametrize("ua", [
    "friendly-scanner", "Friendly-Scanner", "sipvicious 0.3.3", "sipcli/v1.8", "sip-scan",
    "VaxSIPUserAgent/3.1", "iWar", "sundayddr", "SIPBomber 1.0", "siparmyknife/1.0",
    "SIVuS", "x friendly-scanner y"])
def test_scanners_are_recognised(ua):
    assert limits.is_scanner(ua)


@pytest.mark.parametrize("ua", [
    "", "Linphone/5.0", "MicroSIP/3.21.3", "Zoiper rv2.10", "SIPClient/1.0", "sipsak 0.9.8",
    "baresip v2.9.0", "Asterisk PBX 18", "SIPp"])
def test_phones_and_test_tools_are_no_scanners(ua):
    assert not limits.is_scanner(ua)


@pytest.mark.parametrize("text,rate", [("20", 20), (" 5 ", 5), ("0", 0), ("off", 0),
                                       ("100000", 100000)])
def test_rates_an_operator_may_set(text, rate):
    assert limits.parse_rate("invite", text) == rate


@pytest.mark.parametrize("kind,text,message", [
    ("invite", "-1", "from 0 (no limit) to 100000"), ("invite", "lots", "from 0"),
    ("register", "100001", "to 100000"), ("bye", "10", "unknown limit 'bye'")])
def test_bad_rates_are_refused_with_a_message(kind, text, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        limits.parse_rate(kind, text)


def test_the_default_applies_when_nothing_or_garbage_is_stored():
    assert limits.effective_rate("invite", None) == limits.DEFAULT_RATES["invite"]
    assert limits.effective_rate("invite", "junk") == limits.DEFAULT_RATES["invite"]
    assert limits.effective_rate("options", "0") == 0


@pytest.mark.parametrize("ip,key", [
    ("203.0.113.7", "203.0.113.7"),
    ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
    ("[2001:db8:1:2:ffff::9]", "2001:db8:1:2::/64"),
    ("::ffff:198.51.100.4", "198.51.100.4"),
    ("not-an-ip", "not-an-ip")])
def test_a_source_is_its_address_or_its_ipv6_64(ip, key):
    assert limits.source_key(ip) == key


def test_windows():
    assert limits.window(1000.0) == (100, 0.0)
    index, fraction = limits.window(1007.5)
    assert index == 100 and fraction == pytest.approx(0.75)
    assert limits.window(125.0, 60) == (2, pytest.approx(5 / 60))


def test_the_sliding_estimate_weighs_the_previous_window_by_what_it_still_covers():
    assert limits.estimate(Count(current=3, previous=10), 0.0) == 13
    assert limits.estimate(Count(current=3, previous=10), 0.5) == 8
    assert limits.estimate(Count(current=3, previous=10), 1.0) == 3


def test_a_budget_is_exceeded_only_beyond_it():
    assert not limits.over(10, Count(10, 0), 0.3)
    assert limits.over(10, Count(11, 0), 0.3)
    assert limits.over(10, Count(1, 20), 0.1)         # a burst at the end of the last window
    assert not limits.over(10, Count(1, 20), 0.99)    # ... that has slid out
    assert not limits.over(0, Count(10 ** 6, 10 ** 6), 0.5)     # 0: no limit


def test_a_request_over_the_rate_gets_retry_after_the_window():
    rate = limits.DEFAULT_RATES["invite"]
    budget = rate * limits.WINDOW
    assert limits.refused_rate("invite", None, Count(budget, 0), 1000.0) is None
    assert limits.refused_rate("invite", None, Count(budget + 1, 0), 1000.0) == limits.WINDOW
    assert limits.refused_rate("invite", "1", Count(limits.WINDOW + 1, 0), 1000.0) == limits.WINDOW
    assert limits.refused_rate("invite", "0", Count(10 ** 6, 0), 1000.0) is None


def test_the_transfer_cap_is_per_minute():
    assert not limits.transfers_over(2, Count(2, 0), 600.0)
    assert limits.transfers_over(2, Count(3, 0), 600.0)
    assert limits.transfers_over(2, Count(1, 2), 601.0)   # two in the minute before, just now
    assert not limits.transfers_over(0, Count(100, 100), 600.0)


def test_a_refused_source_is_held_for_a_moment_then_asked_about_again():
    blocked = limits.Blocked(hold=1.0)
    assert not blocked.blocked("invite", "1.2.3.4:5060", 100.0)
    blocked.add("invite", "1.2.3.4:5060", 100.0)
    assert blocked.blocked("invite", "1.2.3.4:5060", 100.5)
    assert not blocked.blocked("register", "1.2.3.4:5060", 100.5)
    assert not blocked.blocked("invite", "1.2.3.4:5061", 100.5)
    assert not blocked.blocked("invite", "1.2.3.4:5060", 101.0)
    assert blocked.until == {}


def test_the_memory_of_refused_sources_is_bounded():
    blocked = limits.Blocked(hold=1.0, size=3)
    for n in range(3):
        blocked.add("invite", f"10.0.0.{n}:1", 100.0)
    blocked.add("invite", "10.0.0.9:1", 100.5)        # full, none expired: starts afresh
    assert len(blocked.until) == 1
    for n in range(2):
        blocked.add("invite", f"10.0.1.{n}:1", 100.6)
    blocked.add("invite", "10.0.2.0:1", 101.55)       # full: the expired one goes
    assert set(blocked.until) == {("invite", "10.0.1.0:1"), ("invite", "10.0.1.1:1"),
                                  ("invite", "10.0.2.0:1")}


def test_log_lines_are_throttled_and_the_left_out_ones_counted():
    throttle = limits.Throttle(interval=10)
    assert throttle.allow("rate:invite", 100.0) == 0
    assert [throttle.allow("rate:invite", 100.0 + n) for n in range(1, 5)] == [None] * 4
    assert throttle.allow("scanner", 101.0) == 0            # topics are apart
    assert throttle.allow("rate:invite", 110.0) == 4
    assert throttle.allow("rate:invite", 121.0) == 0
