"""Feature-code collection from DTMF digits (pure).

A code is `*` followed by digits. It completes on `#`, as soon as the digits name exactly
one extension that no longer extension starts with, on an "instant" code (e.g. `*1` while a
transfer runs), or when the inter-digit timeout passes. Digits arrive from SIP INFO and from
RFC 4733 events that rtpengine reports; a phone that sends both for one key press must
produce one digit.
"""
import json
import re
from collections.abc import Container, Mapping
from dataclasses import dataclass, replace

EVENT_DIGITS = "0123456789*#ABCD"       # RFC 4733 event numbers 0..15


class BadDtmf(ValueError):
    pass


def info_digit(content_type: str, body: str) -> str:
    """The digit of a SIP INFO body (application/dtmf-relay or application/dtmf)."""
    kind = content_type.split(";")[0].strip().lower()
    if kind == "application/dtmf-relay":
        fields: dict[str, str] = {}
        for line in body.splitlines():
            name, sep, value = line.partition("=")
            if sep:
                fields[name.strip().lower()] = value.strip()
        signal = fields.get("signal")
        if signal is None:
            raise BadDtmf("no Signal= line")
    elif kind == "application/dtmf":
        signal = body.strip()
    else:
        raise BadDtmf(f"not a DTMF body: {content_type}")
    return _digit(signal)


# Call-IDs and tags are printable ASCII without spaces (RFC 3261 word and token).
_ID = re.compile(r"[!-~]{1,256}")


def report_digit(text: str) -> tuple[str, str, str]:
    """rtpengine's report of one RFC 4733 digit (JSON: {"callid", "source_tag", "event", ...})
    -> (call-id, source tag, digit); raises BadDtmf for anything else."""
    try:
        report = json.loads(text)
    except (ValueError, RecursionError) as bad:       # RecursionError: absurd nesting
        raise BadDtmf("no JSON") from bad
    if not isinstance(report, dict):
        raise BadDtmf("no JSON object")
    callid, tag = report.get("callid"), report.get("source_tag")
    if not (isinstance(callid, str) and _ID.fullmatch(callid)
            and isinstance(tag, str) and _ID.fullmatch(tag)):
        raise BadDtmf("no call-id or source tag")
    return callid, tag, event_digit(report.get("event"))


def event_digit(event: object) -> str:
    """The digit of an RFC 4733 event number."""
    if type(event) is not int or not 0 <= event < len(EVENT_DIGITS):     # (not True either)
        raise BadDtmf(f"event {event!r} is no DTMF digit")
    return EVENT_DIGITS[event]


def _digit(signal: str) -> str:
    signal = signal.upper()
    if len(signal) == 1 and signal in EVENT_DIGITS:
        return signal
    if signal.isdigit() and int(signal) < len(EVENT_DIGITS):    # Signal=10 is *, 11 is #
        return EVENT_DIGITS[int(signal)]
    raise BadDtmf(f"bad DTMF signal {signal!r}")


@dataclass(frozen=True)
class Rules:
    timeout: float = 3.0            # inter-digit timeout, seconds (tenant transfer_digit_timeout)
    max_digits: int = 8             # digits after the *
    max_rate: int = 10              # digits per second per party; more is a flood
    duplicate_window: float = 0.4   # the same digit from the other source within this = one press


@dataclass(frozen=True)
class State:
    """What one party of one call has typed (all of it kept in Redis between digits)."""
    code: str = ""                  # "" idle, else "*" + digits so far
    deadline: float = 0.0           # when the code times out (0: no code running)
    last_digit: str = ""
    last_source: str = ""           # "info" | "rtp"
    last_at: float = 0.0
    window_at: float = 0.0          # flood window start
    window_count: int = 0


# Outcomes of one step. Every outcome but Pass means the digit is consumed: the other party
# must not receive it.
@dataclass(frozen=True)
class Pass:
    """Not part of a code: the digit goes on to the other party."""


@dataclass(frozen=True)
class Collecting:
    code: str
    deadline: float


@dataclass(frozen=True)
class Complete:
    code: str                       # "*100"
    reason: str                     # "#" | "match" | "instant" | "timeout"


@dataclass(frozen=True)
class Discard:
    code: str
    reason: str


@dataclass(frozen=True)
class Duplicate:
    """The same key press reported by the other source."""


@dataclass(frozen=True)
class Match:
    """What the tenant's extensions say about the digits typed so far."""
    exact: bool = False             # the digits are an extension
    longer: bool = False            # some longer extension starts with them


Outcome = Pass | Collecting | Complete | Discard | Duplicate


def candidate(state: State, digit: str) -> str | None:
    """The digits a match lookup is needed for if `digit` comes next (None: no lookup)."""
    if digit.isdigit() and state.code:
        return state.code[1:] + digit
    return None


def press(state: State, digit: str, source: str, now: float, rules: Rules, match: Match = Match(),
          instant: Container[str] = frozenset()) -> tuple[State, Outcome]:
    """One digit -> (new state, outcome). `match` describes candidate(state, digit);
    `instant` holds codes (digits after *) that complete at once."""
    if (digit == state.last_digit and source != state.last_source
            and now - state.last_at < rules.duplicate_window):
        return state, Duplicate()
    seen = replace(state, last_digit=digit, last_source=source, last_at=now)
    if now - state.window_at >= 1.0:
        seen = replace(seen, window_at=now, window_count=1)
    else:
        seen = replace(seen, window_count=state.window_count + 1)
        if seen.window_count > rules.max_rate:
            return _idle(seen), Discard(state.code, "flood")
    if not state.code:
        if digit == "*":
            return _collect(seen, "*", now, rules)
        return seen, Pass()
    if digit == "#":
        if len(state.code) > 1:
            return _idle(seen), Complete(state.code, "#")
        return _idle(seen), Discard(state.code, "empty")
    if digit == "*":                                # start over
        return _collect(seen, "*", now, rules)
    if not digit.isdigit():
        return _idle(seen), Discard(state.code + digit, "invalid")
    code = state.code + digit
    if len(code) - 1 > rules.max_digits:
        return _idle(seen), Discard(code, "too long")
    if code[1:] in instant:
        return _idle(seen), Complete(code, "instant")
    if match.exact and not match.longer:
        return _idle(seen), Complete(code, "match")
    return _collect(seen, code, now, rules)


def expire(state: State, now: float) -> tuple[State, Complete | Discard | None]:
    """The inter-digit timeout: -> (new state, outcome or None if not due)."""
    if not state.code or now < state.deadline:
        return state, None
    if len(state.code) > 1:
        return _idle(state), Complete(state.code, "timeout")
    return _idle(state), Discard(state.code, "timeout")


def _idle(state: State) -> State:
    return replace(state, code="", deadline=0.0)


def _collect(state: State, code: str, now: float, rules: Rules) -> tuple[State, Collecting]:
    state = replace(state, code=code, deadline=now + rules.timeout)
    return state, Collecting(code, state.deadline)


def to_fields(state: State) -> dict[str, str]:
    """State as Redis hash fields (text)."""
    return {"code": state.code, "deadline": repr(state.deadline), "last_digit": state.last_digit,
            "last_source": state.last_source, "last_at": repr(state.last_at),
            "window_at": repr(state.window_at), "window_count": str(state.window_count)}


def from_fields(fields: Mapping[str, str] | None) -> State:
    if not fields:
        return State()
    return State(fields.get("code", ""), float(fields.get("deadline", 0)), fields.get("last_digit", ""),
                 fields.get("last_source", ""), float(fields.get("last_at", 0)),
                 float(fields.get("window_at", 0)), int(fields.get("window_count", 0)))
