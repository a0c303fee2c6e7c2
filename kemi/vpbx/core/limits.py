"""Abuse limits (pure): scanners' User-Agents, per-source request rates, and the throttles
that keep a flood from costing more than a bounded amount of work (and of log).

Rates are counted in Redis (store.py), so every node sees one count: a fixed-window counter
per source, read together with the previous window's, gives a sliding estimate.
"""
import ipaddress
from dataclasses import dataclass

# Well-known scanners and attack tools, as they name themselves in User-Agent (lower case;
# a case-insensitive substring match). "sipcli/" with its slash: "SIPClient" is no scanner.
SCANNERS = ("friendly-scanner", "sipvicious", "sipcli/", "sip-scan", "vaxsipuseragent", "iwar",
            "sundayddr", "sipbomber", "siparmyknife", "sivus")


def is_scanner(user_agent: str) -> bool:
    ua = (user_agent or "").lower()
    return any(name in ua for name in SCANNERS)


# ---- per-source request rates -------------------------------------------------

KINDS = ("register", "invite", "options")      # requests outside a dialog that are counted
WINDOW = 10                 # seconds: the sliding window the rates are averaged over
KEY_TTL = 2 * WINDOW + 1    # a window's counter is read during the next one too
# Requests a second from one source address, averaged over WINDOW (bursts of WINDOW times
# that pass). An office of ~100 phones behind one NAT address stays well below them; a
# scanner or a flood does not.
DEFAULT_RATES = {"register": 20, "invite": 20, "options": 20}
MAX_RATE = 100000
MINUTE = 60                 # seconds: the window of the tenants' transfer caps
TRANSFER_KEY_TTL = 2 * MINUTE + 1
BLOCK_HOLD = 1.0            # seconds a worker refuses an over-limit source without asking Redis


def parse_rate(kind: str, text: str) -> int:
    """An operator's value for `vpbx limits KIND VALUE` -> requests a second (0 = no limit).
    Raises ValueError with a message meant for the operator."""
    if kind not in KINDS:
        raise ValueError(f"unknown limit {kind!r}; known: {', '.join(KINDS)}")
    value = (text or "").strip().lower()
    if value in ("off", "none"):
        return 0
    try:
        rate = int(value)
    except ValueError:
        rate = -1
    if not 0 <= rate <= MAX_RATE:
        raise ValueError(f"{kind} takes requests a second from 0 (no limit) to {MAX_RATE}, "
                         f"not {text!r}")
    return rate


def effective_rate(kind: str, stored: str | None) -> int:
    """The rate in force: the stored value (vpbx:limits) or the default. A value that is
    no number (hand-edited Redis) counts as the default rather than as no limit."""
    try:
        return parse_rate(kind, stored) if stored is not None else DEFAULT_RATES[kind]
    except ValueError:
        return DEFAULT_RATES[kind]


def source_key(ip: str) -> str:
    """The address a rate is counted for: the IPv4 address, or an IPv6 address's /64 (one
    subscriber's share: a host picks addresses in it at will)."""
    if ":" not in ip:                   # IPv4 as Kamailio gives it (the per-call path)
        return ip
    try:
        addr = ipaddress.ip_address(ip.strip("[]"))
    except ValueError:
        return ip
    if addr.version == 4:
        return str(addr)
    if addr.ipv4_mapped:
        return str(addr.ipv4_mapped)
    return str(ipaddress.ip_network(f"{addr}/64", strict=False).network_address) + "/64"


def window(now: float, seconds: int = WINDOW) -> tuple[int, float]:
    """-> (index of the fixed window `now` falls in, fraction of it gone by)."""
    index = int(now // seconds)
    return index, now / seconds - index


@dataclass(frozen=True)
class Count:
    """A counter as Redis returned it: this window's (this request included) and the last's."""
    current: int
    previous: int


def estimate(count: Count, fraction: float) -> float:
    """Requests in the sliding window that ends now: the previous window's, weighted by how
    much of it the sliding window still covers, plus the current one's."""
    return count.previous * (1.0 - fraction) + count.current


def over(budget: int, count: Count, fraction: float) -> bool:
    """Whether this request exceeds `budget` requests a window (0 = no limit)."""
    return budget > 0 and estimate(count, fraction) > budget


def refused_rate(kind: str, stored: str | None, count: Count, now: float) -> int | None:
    """A request of `kind` counted as `count`: None when it may pass, else the Retry-After
    seconds of its 503."""
    rate = effective_rate(kind, stored)
    if over(rate * WINDOW, count, window(now)[1]):
        return WINDOW
    return None


def transfers_over(cap: int, count: Count, now: float) -> bool:
    """A tenant's transfer, counted in `count` per minute: over `cap` a minute (0 = no cap)?"""
    return over(cap, count, window(now, MINUTE)[1])


class Blocked:
    """A worker's short memory of the sources found over a limit: their next requests are
    refused without a Redis round trip for BLOCK_HOLD seconds (a flood costs one round trip
    per worker and second, not one per request). Only a cache of a shared decision: the
    count itself is in Redis."""

    def __init__(self, hold: float = BLOCK_HOLD, size: int = 10000) -> None:
        self.hold, self.size = hold, size
        self.until: dict[tuple[str, str], float] = {}

    def add(self, kind: str, source: str, now: float) -> None:
        if len(self.until) >= self.size:       # many sources at once: forget the expired
            self.until = {k: t for k, t in self.until.items() if t > now}
            if len(self.until) >= self.size:
                self.until.clear()
        self.until[(kind, source)] = now + self.hold

    def blocked(self, kind: str, source: str, now: float) -> bool:
        until = self.until.get((kind, source))
        if until is None:
            return False
        if until <= now:
            del self.until[(kind, source)]
            return False
        return True


class Throttle:
    """At most one log line per `interval` seconds for each topic; the lines left out are
    counted and reported with the next one."""

    def __init__(self, interval: float = 10.0) -> None:
        self.interval = interval
        self.last: dict[str, float] = {}      # topic -> when a line was last let through
        self.skipped: dict[str, int] = {}     # topic -> lines left out since

    def allow(self, topic: str, now: float) -> int | None:
        """-> None: leave this line out; else how many lines were left out before it."""
        last = self.last.get(topic)
        if last is not None and now - last < self.interval:
            self.skipped[topic] = self.skipped.get(topic, 0) + 1
            return None
        self.last[topic] = now
        return self.skipped.pop(topic, 0)
