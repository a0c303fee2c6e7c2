"""lockstore.py on a real redis-server: the failed-login counter script (_FAILED) through
LockStore.failed, the check that reads it, and the CLI's view of the keys it leaves."""
import pytest

from vpbx.core import lockout
from vpbx.adapters.redis import lockstore
from vpbx.adapters.redis.lockstore import LIMITS, ext_key, src_key
from vpbx.adapters.redis.store import loc_key

IP = "192.0.2.7"
DOMAIN = "T1.Test"
EXT = "200"
SMALL = lockout.Limits(failures=3, window=60, lock=900)


def fail(locks, times, limits=SMALL, ip=IP, ext=EXT):
    return [locks.failed(ip, DOMAIN, ext, limits) for _ in range(times)]


def test_first_failure_counts_both_subjects_for_the_window(locks, r):
    assert locks.failed(IP, DOMAIN, EXT, SMALL) == (1, 1)
    assert sorted(r.keys("*")) == ["vpbx:authfail:ext:200@t1.test", "vpbx:authfail:src:192.0.2.7"]
    for key in (src_key(IP), ext_key(DOMAIN, EXT)):
        assert r.get(key) == "1"
        assert 55 < r.ttl(key) <= 60


def test_failures_within_the_window_keep_its_expiry(locks, r):
    fail(locks, 1)
    r.expire(src_key(IP), 30)                   # the window has run for 30 s
    assert fail(locks, 1) == [(2, 2)]
    assert r.get(src_key(IP)) == "2"
    assert 25 < r.ttl(src_key(IP)) <= 30


def test_the_failure_that_reaches_the_limit_sets_the_lock_time(locks, r):
    assert fail(locks, 3) == [(1, 1), (2, 2), (3, 3)]
    for key in (src_key(IP), ext_key(DOMAIN, EXT)):
        assert r.get(key) == "3"
        assert 895 < r.ttl(key) <= 900


def test_failures_beyond_the_limit_count_but_do_not_extend_the_lock(locks, r):
    fail(locks, 3)
    r.expire(src_key(IP), 100)                  # 800 s of the lock have passed
    assert fail(locks, 2) == [(4, 4), (5, 5)]
    assert r.get(src_key(IP)) == "5"
    assert 95 < r.ttl(src_key(IP)) <= 100


def test_a_limit_of_one_locks_at_the_first_failure(locks, r):
    assert locks.failed(IP, DOMAIN, EXT, lockout.Limits(failures=1, window=60, lock=900)) == (1, 1)
    assert 895 < r.ttl(src_key(IP)) <= 900


def test_the_counters_are_per_subject(locks, r):
    fail(locks, 2)
    assert locks.failed("192.0.2.8", "t1.test", EXT, SMALL) == (1, 3)   # domain in lower case
    assert locks.failed(IP, DOMAIN, "201", SMALL) == (3, 1)
    assert {k: r.get(k) for k in r.keys("*")} == {
        src_key(IP): "3", src_key("192.0.2.8"): "1",
        ext_key(DOMAIN, EXT): "3", ext_key(DOMAIN, "201"): "1"}


def test_check_reads_the_counters_the_binding_and_the_stored_limits(locks, r):
    r.hset(LIMITS, mapping={"failures": "3", "window": "60", "lock": "900"})
    assert locks.check(IP, DOMAIN.lower(), EXT) == (False, SMALL)
    fail(locks, 2)
    assert locks.check(IP, DOMAIN.lower(), EXT) == (False, SMALL)
    fail(locks, 1)
    assert locks.check(IP, DOMAIN.lower(), EXT) == (True, SMALL)             # source locked
    assert locks.check("192.0.2.8", DOMAIN.lower(), EXT) == (True, SMALL)    # extension locked
    r.hset(loc_key("t1.test", EXT), "src", "udp:192.0.2.8:5060")
    assert locks.check("192.0.2.8", DOMAIN.lower(), EXT) == (False, SMALL)   # ... not from its binding
    assert locks.check("192.0.2.9", DOMAIN.lower(), "201") == (False, SMALL)


def test_check_with_no_or_invalid_stored_limits_uses_the_defaults(locks, r):
    assert locks.check(IP, "t1.test", EXT) == (False, lockout.Limits())
    r.hset(LIMITS, mapping={"failures": "0", "window": "x", "lock": "120"})
    assert locks.check(IP, "t1.test", EXT) == (False, lockout.Limits(lock=120))


def test_the_cli_lists_and_clears_what_the_script_left(locks, r):
    lockstore.set_limit(r, "failures", "3")
    fail(locks, 3)
    fail(locks, 1, ext="201")
    rows = lockstore.subjects(r)
    assert [row[:3] + (row[4],) for row in rows] == [
        ("ext", "200@t1.test", 3, True), ("ext", "201@t1.test", 1, False), ("src", IP, 4, True)]
    assert all(row[3] > 0 for row in rows)
    assert lockstore.clear(r, "ext", (DOMAIN, EXT)) == 1
    assert lockstore.clear(r, "src", (IP,)) == 1
    assert r.keys("vpbx:authfail:*") == [ext_key(DOMAIN, "201")]
    with pytest.raises(ValueError, match="no failed logins"):
        lockstore.clear(r, "src", (IP,))
    assert lockstore.clear(r, "all") == 1
    assert r.keys("vpbx:authfail:*") == []
