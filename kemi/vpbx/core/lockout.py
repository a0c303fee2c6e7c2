"""Failed-auth lockout (pure): when a source or an extension is refused before any challenge.

Failed digest checks are counted per source IP and per extension (user@domain, whether
the extension exists or not, so that a lock tells a scanner nothing) in a window that
starts with the first failure. When a count reaches `failures`, that subject is locked for
`lock` seconds: its REGISTERs and INVITEs that need digest auth get 403 at once.

Against locking out a real phone (DoS): the per-extension lock does not apply to requests
from the IP address the extension is currently registered from; the per-source lock has
no exception (an address that fails that often is locked, whatever it claims to be).
A success resets nothing (else one known password would let a scanner reset its count).
"""
import ipaddress
from dataclasses import dataclass, fields
from collections.abc import Mapping

# name -> (default, lowest, highest)
LIMITS = {
    "failures": (10, 1, 1000),      # failed digest checks within the window that lock
    "window": (600, 1, 86400),      # seconds, from the first failure
    "lock": (900, 1, 86400),        # seconds a subject stays locked
}


@dataclass(frozen=True)
class Limits:
    failures: int = LIMITS["failures"][0]
    window: int = LIMITS["window"][0]
    lock: int = LIMITS["lock"][0]

    @classmethod
    def from_fields(cls, stored: Mapping[str, str]) -> "Limits":
        """From the Redis hash: a missing or invalid field is its default (the proxy never
        fails on a hand-edited value)."""
        return cls(**{f.name: _bounded(f.name, stored.get(f.name)) for f in fields(cls)})


def _bounded(name: str, text: str | None) -> int:
    default, low, high = LIMITS[name]
    if text is None:
        return default
    try:
        value = int(text)
    except (TypeError, ValueError):
        return default
    return value if low <= value <= high else default


def limit(name: str, text: str) -> int:
    """A limit typed by the operator, validated (ValueError with the allowed range)."""
    if name not in LIMITS:
        raise ValueError(f"unknown limit {name!r} (one of: {', '.join(LIMITS)})")
    _, low, high = LIMITS[name]
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or not low <= value <= high:
        raise ValueError(f"{name} takes a whole number from {low} to {high}, not {text!r}")
    return value


def source_ip(src: str) -> str:
    """The IP of a binding's `proto:ip:port` ("udp:[::1]:5060" -> "::1"); "" for none."""
    hostport = src.partition(":")[2]
    return hostport.rpartition(":")[0].strip("[]")


def refused(src_failures: int, ext_failures: int, limits: Limits, ip: str, registered_src: str) -> bool:
    """Whether a request needing digest auth from `ip` is refused before any challenge."""
    if src_failures >= limits.failures:
        return True
    return ext_failures >= limits.failures and ip != source_ip(registered_src)


def ip_address(text: str) -> str:
    """An IP address typed by the operator, in the form the proxy counts it ($si)."""
    try:
        return str(ipaddress.ip_address(text.strip("[]")))
    except ValueError:
        raise ValueError(f"{text!r} is not an IP address") from None
