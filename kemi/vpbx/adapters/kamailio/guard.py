"""Abuse limits at the SIP edge (adapter): scanners dropped, sources over their request rate
answered 503, each at a bounded cost — no Redis for a scanner nor for a source a worker has
just refused, and at most one log line per topic and 10 s per worker (limits.py decides)."""
import logging
import time
from typing import TYPE_CHECKING

from vpbx.core import limits

if TYPE_CHECKING:
    from vpbx.adapters.kamailio.sip import Sip

log = logging.getLogger("vpbx.guard")

RETRY_AFTER = limits.WINDOW


class Guard:
    def __init__(self, sip: "Sip") -> None:
        self.sip = sip
        self.blocked = limits.Blocked()
        self.log = limits.Throttle()

    def _note(self, topic: str, text: str, now: float) -> None:
        skipped = self.log.allow(topic, now)
        if skipped is not None:
            more = f" ({skipped} more since the last such line)" if skipped else ""
            log.info("vpbx: %s%s", text, more)

    def scanner(self, user_agent: str) -> bool:
        """A scanner's request: dropped without an answer (no reflection, nothing to learn)
        and without any Redis work. -> True when dropped."""
        if not limits.is_scanner(user_agent):
            return False
        self._note("scanner", f"dropped {self.sip.pv('$rm')} from {self.sip.source()}: scanner User-Agent "
                              f"{user_agent[:60]!r}", time.time())
        return True

    # The worker's memory is by exact IP:PORT (the Redis count is by address): a trunk, known
    # by its IP:PORT and never refused, is never held back with a refused neighbour.

    def held(self, kind: str, hostport: str, now: float) -> bool:
        """A source this worker refused a moment ago: 503 again, no Redis. -> True if so."""
        if not self.blocked.blocked(kind, hostport, now):
            return False
        self._refuse(kind, hostport, now)
        return True

    def refused(self, kind: str, hostport: str, rate: tuple[limits.Count, str | None] | None,
                now: float) -> bool:
        """rate: (limits.Count, the operator's rate) from the request's lookup pipeline, None
        for a trunk (never limited). -> True when answered 503 (over the limit)."""
        if rate is None:
            return False
        count, stored = rate
        if limits.refused_rate(kind, stored, count, now) is None:
            return False
        self.blocked.add(kind, hostport, now)
        self._refuse(kind, hostport, now)
        return True

    def _refuse(self, kind: str, hostport: str, now: float) -> None:
        self.sip.add_reply_header(f"Retry-After: {RETRY_AFTER}\r\n")
        self.sip.sl_reply(503, "Service Unavailable - too many requests")
        self._note(f"rate:{kind}", f"503 to {kind.upper()} from {hostport}: over the rate "
                                   f"limit", now)
