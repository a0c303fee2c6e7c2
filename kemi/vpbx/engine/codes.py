"""Feature codes: applies DTMF digits to a party's typing state kept in Redis and publishes
completed codes on the PBX event stream. Shared by both digit sources (SIP INFO, RFC 4733
events reported by rtpengine) and the timeout timer. No KSR here: the glue replies to SIP.
"""
import logging
import time

from vpbx.core import dtmf
from vpbx.core.call import Leg
from vpbx.core.transfer import CONSULT, RETURN_CODE, RINGING

log = logging.getLogger("vpbx.codes")
RETRIES = 3


def may_type_codes(call, side):
    """Codes are collected only for a tenant with "Transfer by PBX" on, and only from the
    party that is one of its extensions (the client's digits always pass through)."""
    return call.get("pbx_transfer") == "on" and Leg(call, side).role == "ext"


def rules(call):
    # External numbers (when the tenant allows them as targets) are longer than extensions.
    return dtmf.Rules(timeout=float(call.get("transfer_digit_timeout") or 3),
                      max_digits=20 if call.get("transfer_external") else 8)


RETURN = frozenset({RETURN_CODE[1:]})


def instant_codes(call):
    """While a transfer runs, *1 (return) acts at once: no waiting for # or the timeout."""
    return RETURN if call.get("x_phase") in (RINGING, CONSULT) else frozenset()


NOT_THE_PARTY = "not the party"   # digit() outcome: the digit did not come from that party


def digit(store, callid, side, key, source, now=None, rtp_tag=None, sent_by=None):
    """Apply one digit of `side` (or of the party rtpengine calls `rtp_tag`).
    -> (the dtmf outcome, the call's fields, the side), outcome None when codes are not
    collected for that party (the digit is none of the PBX's business), NOT_THE_PARTY when
    `sent_by(call, side)` says the request claiming to be that party's came from elsewhere."""
    for _ in range(RETRIES):
        at = time.time() if now is None else now
        call, side, fields = store.dtmf_load(callid, side, rtp_tag)
        if not call or call.get("x_join") or not may_type_codes(call, side):
            return None, call, side     # (a taken-over dialog's digits count in its new call)
        if sent_by and not sent_by(call, side):
            log.warning("vpbx: %s %s: a digit not sent by that party refused", callid, side)
            return NOT_THE_PARTY, call, side
        state = dtmf.from_fields(fields)
        digits = dtmf.candidate(state, key)
        match = dtmf.Match(*store.ext_match(call["tenant"], digits)) if digits else dtmf.Match()
        new, outcome = dtmf.press(state, key, source, at, rules(call), match, instant_codes(call))
        if store.dtmf_save(callid, side, fields.get("v", ""), dtmf.to_fields(new), new.deadline,
                           _event(call, callid, side, outcome, source, at)):
            _log(callid, side, outcome)
            return outcome, call, side
    log.warning("vpbx: %s %s: digit %s lost to concurrent updates", callid, side, key)
    return dtmf.Discard("", "contention"), call, side


def expire(store, callid, side, now=None):
    """Complete or discard the side's code if its digit timeout has passed (the timer).
    -> (outcome, call fields) when the code ended, else None."""
    at = time.time() if now is None else now
    call, side, fields = store.dtmf_load(callid, side)
    if not call:
        return None
    new, outcome = dtmf.expire(dtmf.from_fields(fields), at)
    if outcome is None:             # a newer digit moved the deadline
        return None
    # A lost compare-and-set means a digit came meanwhile and owns the state now.
    if not store.dtmf_save(callid, side, fields.get("v", ""), dtmf.to_fields(new), 0,
                           _event(call, callid, side, outcome, "timer", at)):
        return None
    _log(callid, side, outcome)
    return outcome, call


def _event(call, callid, side, outcome, source, at):
    if not isinstance(outcome, dtmf.Complete):
        return None
    return {"type": "code", "callid": callid, "tenant": call["tenant"], "party": side,
            "ext": Leg(call, side).ext, "code": outcome.code, "completed_by": outcome.reason,
            "source": source, "at": f"{at:.3f}"}


def _log(callid, side, outcome):
    if isinstance(outcome, dtmf.Discard):
        log.info("vpbx: %s %s: code %r discarded (%s)", callid, side, outcome.code, outcome.reason)
    elif isinstance(outcome, dtmf.Complete):
        log.info("vpbx: %s %s: code %s completed (%s)", callid, side, outcome.code, outcome.reason)
