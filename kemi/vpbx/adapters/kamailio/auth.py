"""Digest authentication of REGISTERs and INVITEs, with lockout (lockout.py, lockstore.py)."""
import logging
import secrets

from vpbx.core import routing

log = logging.getLogger("vpbx.auth")


class Auth:
    def __init__(self, locks, sip):
        self.locks, self.sip = locks, sip
        # What a caller or registrant that is no extension must prove: no password gives it.
        self.decoy_secret = secrets.token_hex(16)

    def rejected(self, decision):
        """Answer a routing decision that refuses the request -> True when answered."""
        if isinstance(decision.outcome, routing.Reject):
            self.sip.reply(decision.outcome.code, decision.outcome.reason)
            return True
        return False

    def authenticated(self, decision, realm, user):
        """Digest check when the decision asks for one; challenges or rejects otherwise.
        A locked source or extension is refused before any challenge (lockout.py)."""
        if not decision.secret:
            return True
        sip = self.sip
        ip = sip.pv("$si")
        refused, limits = self.locks.check(ip, realm, user)
        if refused:
            log.debug("vpbx: locked out: %s %s@%s from %s", sip.pv("$rm"), user, realm, sip.source())
            sip.reply(403, "Forbidden")
            return False
        rc = sip.auth_check(realm, decision.secret)
        verdict = routing.auth_verdict(rc)
        if verdict == "ok":
            sip.consume_credentials()
            return True
        if verdict == "failed":
            src_count, ext_count = self.locks.failed(ip, realm, user, limits)
            log.info("vpbx: auth failed (%s) for %s@%s from %s: failures %s from %s, %s for %s@%s",
                     rc, user, realm, sip.source(), src_count, ip, ext_count, user, realm)
            locked = [name for name, count in ((f"source {ip}", src_count),
                                               (f"extension {user}@{realm}", ext_count))
                      if count == limits.failures]
            if locked:
                log.warning("vpbx: locked for %s s: %s", limits.lock, " and ".join(locked))
            sip.reply(403, "Forbidden")
        else:
            sip.challenge(realm, stale=verdict == "stale")
        return False
