"""Redis adapter of the failed-auth lockout (rules in lockout.py, keys in docs/redis-keys.md).

One counter per subject, shared by every proxy node: `vpbx:authfail:src:<ip>` and
`vpbx:authfail:ext:<ext>@<domain>`. The counter expires with its window; the failure that
reaches the limit extends it to the lock time, and while it is at the limit or above the
subject is locked. Each counter is one key (one Redis Cluster slot per script).
"""
from typing import TYPE_CHECKING

from vpbx.core import lockout
from vpbx.adapters.redis.store import PREFIX, _as_dict, loc_key

LIMITS = PREFIX + "auth_lockout"        # hash: failures, window, lock (each optional)
FAILS = PREFIX + "authfail:"

if TYPE_CHECKING:                       # types only: the proxy never imports redis-py
    from redis import Redis

    from vpbx.adapters.redis.resp import Client


def src_key(ip: str) -> str:
    return f"{FAILS}src:{ip}"


def ext_key(domain: str, ext: str) -> str:
    return f"{FAILS}ext:{ext}@{domain.lower()}"


_FAILED = """
local n = redis.call('incr', KEYS[1])
if n == 1 then redis.call('expire', KEYS[1], ARGV[1]) end
if n == tonumber(ARGV[2]) then redis.call('expire', KEYS[1], ARGV[3]) end
return n
"""


class LockStore:
    """The proxy's side: one round trip to check, one more after a failed digest check."""

    def __init__(self, fast: "Client") -> None:
        self.fast = fast

    def check(self, ip: str, domain: str, ext: str) -> tuple[bool, lockout.Limits]:
        """-> (refused before any challenge, the limits in force)"""
        src, extc, registered, stored = self.fast.pipeline(
            ("GET", src_key(ip)), ("GET", ext_key(domain, ext)),
            ("HGET", loc_key(domain, ext), "src"), ("HGETALL", LIMITS))
        limits = lockout.Limits.from_fields(_as_dict(stored))
        return lockout.refused(int(src or 0), int(extc or 0), limits, ip, registered or ""), limits

    def failed(self, ip: str, domain: str, ext: str, limits: lockout.Limits) -> tuple[int, ...]:
        """Count a failed digest check -> (the source's count, the extension's count)."""
        args = (limits.window, limits.failures, limits.lock)
        return tuple(self.fast.pipeline(("EVAL", _FAILED, 1, src_key(ip), *args),
                                        ("EVAL", _FAILED, 1, ext_key(domain, ext), *args)))


# ---- the CLI's side (redis-py) ---------------------------------------------------------

def limits(r: "Redis") -> lockout.Limits:
    return lockout.Limits.from_fields(r.hgetall(LIMITS))


def set_limit(r: "Redis", name: str, value: str) -> int:
    number = lockout.limit(name, value)
    r.hset(LIMITS, name, number)
    return number


def subjects(r: "Redis") -> list[tuple[str, str, int, int, bool]]:
    """[(kind "src"|"ext", subject, failures, seconds left, locked)] sorted by kind, subject."""
    keys = sorted(r.scan_iter(match=FAILS + "*", count=1000))
    if not keys:
        return []
    with r.pipeline(transaction=False) as p:
        for key in keys:
            p.get(key)
            p.ttl(key)
        replies = p.execute()
    threshold = limits(r).failures
    rows = []
    for key, count, ttl in zip(keys, replies[::2], replies[1::2]):
        if count is None:           # expired meanwhile
            continue
        kind, _, subject = key[len(FAILS):].partition(":")
        rows.append((kind, subject, int(count), max(ttl, 0), int(count) >= threshold))
    return rows


def clear(r: "Redis", kind: str, subject: tuple[str, ...] = ()) -> int:
    """Forget the failures (and lock) of a source IP, an extension (domain, ext), or all
    ("all") -> how many subjects were cleared; ValueError when there was none to clear."""
    if kind == "all":
        keys = list(r.scan_iter(match=FAILS + "*", count=1000))
        return r.delete(*keys) if keys else 0
    if kind == "src":
        (ip,) = subject
        key, name = src_key(lockout.ip_address(ip)), f"source {lockout.ip_address(ip)}"
    elif kind == "ext":
        domain, ext = subject
        key, name = ext_key(domain, ext), f"extension {ext}@{domain.lower()}"
    else:
        raise ValueError(f"lock clear takes src IP, ext DOMAIN EXT or all, not {kind!r}")
    if not r.delete(key):
        raise ValueError(f"no failed logins recorded for {name} (see: vpbx lock list)")
    return 1
