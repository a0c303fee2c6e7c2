"""The PBX transfer state machine (pure): step(state, event, rules) -> (state, effects).

One flow for blind and attended transfer. Names: C = the client (transferee), A = the
transferor (typed the code), B = the target. A call is made of *legs*, one per party: the
two sides of the original dialog ("caller", "callee") and the dialogs the proxy originates
("leg1", "leg2", ...). Two legs talk; a transfer adds a third:

    TALKING   --*EXT-->  RINGING (C hears hold media, A ringback, B is called)
    RINGING   --B answers-->  CONSULT (A talks to B)  --A hangs up-->  TALKING C-B
    RINGING   --A hangs up-->  BLIND  --B answers-->  TALKING C-B
    RINGING/CONSULT  --*1, B fails (A hears a tone first), B hangs up-->  TALKING C-A
    BLIND     --B fails-->  RECALLING A (then RECALL_WAIT between tries)  --A answers--> TALKING
    ...       --all tries fail-->  ENDING (C hears a tone)  -->  ENDED

A phone's REFER to a trunk's party is carried out the same way (mode "refer": NOTIFYs instead
of tones). With Replaces (mode "join") B is not called: the dialog the phone has with B is
taken over as B's leg, which a re-INVITE moves onto C's media.

The adapters turn SIP messages, rtpengine reports and timers into events and execute the
effects; they also decide whether a code's target is valid (`Transfer.refused`).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum
from collections.abc import Callable, Mapping

from vpbx.core.call import SIDES, Takeover


class Phase(StrEnum):
    TALKING = "talking"
    RINGING = "ringing"
    CONSULT = "consult"
    BLIND = "blind"
    RECALLING = "recalling"
    RECALL_WAIT = "recall_wait"
    ENDING = "ending"
    ENDED = "ended"


TALKING, RINGING, CONSULT, BLIND, RECALLING, RECALL_WAIT, ENDING, ENDED = Phase
PHASES = tuple(Phase)
REFER, JOIN = "refer", "join"      # State.mode of a transfer a phone asked for with REFER
ORIGINAL = frozenset(SIDES)         # the legs of the dialog the proxy relays
RETURN_CODE = "*1"                  # the feature code that returns the call to the transferor
UNANCHORED = "unanchored"           # Timeout kind: a 2xx rtpengine could not take (invites.py)


@dataclass(frozen=True)
class Rules:
    """Tenant settings the machine needs (seconds)."""
    no_answer: float = 15.0         # transfer_no_answer_timeout
    recall: bool = True             # transfer_recall: call A back when a blind transfer fails
    recall_retries: int = 2         # tries after the first call-back
    recall_delay: float = 10.0      # between call-back tries
    tone: float = 1.5               # the failure tone's length (then A is back, or C hung up)
    detach: float = 3.0             # after a REFER transfer: the phone's own BYE is waited for


@dataclass(frozen=True)
class State:
    phase: Phase = TALKING
    c: str = "caller"       # the leg that stays (C while a transfer runs)
    a: str = "callee"       # the leg talking to C (A while a transfer runs); "" once A left
    b: str = ""             # the leg being called or consulted (B, or A when called back)
    a_ext: str = ""         # A's extension (for the call-back)
    b_ext: str = ""
    recalls_left: int = 0
    legs: int = 0           # originated legs so far (names leg1, leg2, ...)
    mode: str = ""          # "refer": a phone's REFER the proxy carries out; "join": with Replaces
    detached: str = ""      # A after a REFER transfer completed: its BYE is still to come


# ---- events -----------------------------------------------------------------

@dataclass(frozen=True)
class Transfer:             # `leg` completed *EXT; refused: why EXT is no valid target, or ""
    leg: str
    ext: str
    leg_ext: str = ""       # the typist's own extension
    refused: str = ""
    refer: bool = False     # asked with a REFER the proxy answered itself (blind transfer)
    external: bool = False  # ext is an external number (called through the outbound trunk)
    join: Takeover | None = None    # REFER with Replaces: the dialog with B to take over


@dataclass(frozen=True)
class Return:               # `leg` typed the return code (*1)
    leg: str


@dataclass(frozen=True)
class Progress:             # 180/183 from an originated leg
    leg: str


@dataclass(frozen=True)
class Answered:             # 2xx from an originated leg
    leg: str


@dataclass(frozen=True)
class Failed:               # a final error response for an originated leg
    leg: str
    reason: str             # busy, rejected, unavailable, ...


@dataclass(frozen=True)
class Hangup:               # BYE from `leg`
    leg: str


@dataclass(frozen=True)
class Timeout:              # a timer scheduled with Schedule(kind, leg) is due
    kind: str               # "no_answer", "relink", "recall", "hangup", UNANCHORED
    leg: str = ""


@dataclass(frozen=True)
class RelayedBye:           # `leg`'s BYE was relayed through the original dialog while the
    leg: str                # proxy could not reach Redis: that dialog is over, unrecorded


# ---- effects ----------------------------------------------------------------

@dataclass(frozen=True)
class Hold:                 # play `leg` the hold media (music or ringback); `mute` legs are
    leg: str                # no longer heard by it (nor their DTMF)
    mute: tuple = ()


@dataclass(frozen=True)
class Ringback:             # play `leg` the ringback tone (the transferor while B rings)
    leg: str


@dataclass(frozen=True)
class Link:                 # `x` and `y` hear each other and nobody else (media played to
    x: str                  # them stops)
    y: str


@dataclass(frozen=True)
class Tone:                 # play `leg` the short failure tone
    leg: str


@dataclass(frozen=True)
class Call:                 # originate an INVITE to extension `ext` as leg `leg`, its media
    leg: str                # offered from `client`'s (and not heard by anyone yet)
    ext: str
    client: str
    transferor: str = ""    # the leg of A (Referred-By, identity when caller-number is off)
    recall: bool = False    # a call-back to A: A's phone shows the client's number
    external: bool = False  # an external number, not an extension
    join: Takeover | None = None    # no INVITE: take over B's end of this dialog
                                    # (Transfer.join) and re-INVITE B onto the client's media


@dataclass(frozen=True)
class Release:              # B's taken-over dialog joined: hang up its other end (the phone
    leg: str                # that asked), end its own media call


@dataclass(frozen=True)
class Resume:               # after a join: if the phone had put `leg` (the client) on hold, a
    leg: str                # re-INVITE takes it off hold (same media address)


@dataclass(frozen=True)
class Restore:              # the take-over of `leg`'s dialog failed: relay it again as its own call
    leg: str


@dataclass(frozen=True)
class Cancel:               # CANCEL the ringing originated leg
    leg: str


@dataclass(frozen=True)
class Bye:                  # the proxy ends `leg`'s dialog with a BYE
    leg: str


@dataclass(frozen=True)
class Accept:               # answer `leg`'s BYE here, do not relay it
    leg: str


@dataclass(frozen=True)
class Relay:                # relay the BYE through the original dialog as a proxy does
    leg: str


@dataclass(frozen=True)
class Drop:                 # `leg` has left: nobody hears it, it hears nothing
    leg: str


@dataclass(frozen=True)
class EndCall:              # nothing left: remove the media call and the PBX state
    pass


@dataclass(frozen=True)
class Notify:               # report a REFER's progress to `leg` (NOTIFY, message/sipfrag)
    leg: str
    status: str             # "100 Trying", "200 OK", "486 Busy Here", ...
    final: bool = True


@dataclass(frozen=True)
class Schedule:             # deliver Timeout(kind, leg) after `seconds`
    kind: str
    leg: str
    seconds: float


@dataclass(frozen=True)
class Publish:              # append a transfer event to the PBX event stream
    kind: str               # started, ringing, answered, completed, returned, failed, recalled
    details: dict = field(default_factory=dict)


Event = Transfer | Return | Progress | Answered | Failed | Hangup | Timeout | RelayedBye
Effect = (Hold | Ringback | Link | Tone | Call | Release | Resume | Restore | Cancel | Bye | Accept
          | Relay | Drop | EndCall | Notify | Schedule | Publish)
Effects = list[Effect]
Handler = Callable[..., tuple[State, Effects]]   # (State, one Event type, Rules)
DEFAULT_RULES = Rules()


def step(state: State, event: Event, rules: Rules = DEFAULT_RULES) -> tuple[State, Effects]:
    """-> (new state, [effects]). Events that do not apply to the state change nothing."""
    if isinstance(event, RelayedBye):
        return relayed_bye(state, event)
    handler = _HANDLERS.get((state.phase, type(event)))
    if handler is None:
        return state, _stale(state, event)
    return handler(state, event, rules)


def _stale(state: State, event: Event) -> Effects:
    # A 2xx from a leg the machine gave up on (e.g. it raced the CANCEL): end that dialog.
    # (A retransmitted 2xx of a leg still in the call changes nothing.)
    if (isinstance(event, Answered) and event.leg.startswith("leg")
            and event.leg not in (state.a, state.b, state.c)):
        return [Bye(event.leg)]
    return []


# What a phone that asked with REFER is told (sipfrag status lines).
REFUSED_STATUS = {"no_such_extension": "404 Not Found", "not_registered": "480 Temporarily Unavailable",
                  "own_call": "403 Forbidden", "no_outbound_trunk": "503 Service Unavailable",
                  "trunk_to_trunk": "403 Forbidden", "too_many_transfers": "503 Service Unavailable"}
FAILURE_STATUS = {"busy": "486 Busy Here", "rejected": "603 Decline",
                  "no_answer": "408 Request Timeout", "unavailable": "480 Temporarily Unavailable",
                  "not_registered": "480 Temporarily Unavailable"}


def relayed_bye(s: State, e: RelayedBye) -> tuple[State, Effects]:
    """In any phase (docs/architecture.md, "When Redis fails"): the original dialog's two
    ends had the BYE. What else is left of the call is ended: a leg ringing is cancelled (a
    dialog being taken over goes back to its phone), an answered leg (B consulted, a party
    the proxy joined) gets a BYE; then the media and the record go."""
    if s.phase == ENDED or e.leg not in (s.a, s.b, s.c, s.detached):
        return s, []
    left: Effects = []
    if s.b and s.phase in (RINGING, BLIND, RECALLING):
        left += [Cancel(s.b), *_restored(s)]
    elif s.b and s.phase == CONSULT:
        left.append(Bye(s.b))
    left += [Bye(leg) for leg in (s.a, s.c) if leg and leg not in ORIGINAL]
    if s.phase != TALKING:
        left.append(_failed(s, "redis_unreachable"))
    return replace(s, phase=ENDED, detached=""), [*left, EndCall()]


def spliced(x: str, y: str) -> bool:
    """Whether legs x and y are joined by the proxy (not the two ends of the original dialog)."""
    return {x, y} != ORIGINAL


def _hang_up_pair(leg: str, other: str) -> Effects:
    """The BYE of `leg` ends the call with `other`."""
    if spliced(leg, other):
        return [Accept(leg), Bye(other), EndCall()]
    return [Relay(leg), EndCall()]


def _new_leg(state: State) -> tuple[str, int]:
    n = state.legs + 1
    return f"leg{n}", n


def _failed(state: State, why: str, **more: str) -> Publish:
    return Publish("failed", {"reason": why, "target": state.b_ext, **more})


# ---- TALKING ----------------------------------------------------------------

def talking_transfer(s: State, e: Transfer, rules: Rules) -> tuple[State, Effects]:
    if e.leg not in (s.a, s.c):
        return s, []
    other = s.c if e.leg == s.a else s.a
    if e.refused:
        failed = Publish("failed", {"reason": e.refused, "target": e.ext, "transferor": e.leg})
        if e.refer:
            return s, [Notify(e.leg, REFUSED_STATUS.get(e.refused, "403 Forbidden")), failed]
        return s, [Tone(e.leg), failed]
    b, n = _new_leg(s)
    mode = JOIN if e.join else REFER if e.refer else ""
    new = replace(s, phase=RINGING, a=e.leg, c=other, b=b, a_ext=e.leg_ext, b_ext=e.ext, legs=n,
                  mode=mode)
    if mode:                    # the phone shows its own progress: no ringback, NOTIFYs instead
        return new, [Hold(other, mute=(e.leg,)), Notify(e.leg, "100 Trying", final=False),
                     Call(b, e.ext, client=other, transferor=e.leg, external=e.external,
                          join=e.join),
                     Schedule("no_answer", b, rules.no_answer),
                     Publish("started", {"transferor": e.leg, "client": other, "target": e.ext,
                                         "mode": "attended-refer" if e.join else "refer"})]
    # Media first: once the INVITE is out, B's answer may be handled by another process.
    return new, [Hold(other, mute=(e.leg,)), Ringback(e.leg),
                 Call(b, e.ext, client=other, transferor=e.leg, external=e.external),
                 Schedule("no_answer", b, rules.no_answer),
                 Publish("started", {"transferor": e.leg, "client": other, "target": e.ext})]


def talking_timeout(s: State, e: Timeout, rules: Rules) -> tuple[State, Effects]:
    """The failure tone has been played to A: A and C talk again. Or the phone that asked
    with REFER has not hung up after being told: the proxy ends its leg. Or the call was
    answered while rtpengine could not take the answer (UNANCHORED): both ends get a BYE."""
    if e.kind == "relink" and e.leg == s.a:
        return s, [Link(s.c, s.a)]
    if e.kind == "hangup" and e.leg and e.leg == s.detached:
        return replace(s, detached=""), [Bye(e.leg)]
    if e.kind == UNANCHORED and e.leg in ORIGINAL and not spliced(s.a, s.c) and not s.detached:
        return replace(s, phase=ENDED), [Bye("caller"), Bye("callee"), EndCall()]
    return s, []


def talking_hangup(s: State, e: Hangup, rules: Rules) -> tuple[State, Effects]:
    if e.leg and e.leg == s.detached:       # the phone that asked with REFER leaves
        return replace(s, detached=""), [Accept(e.leg), Drop(e.leg)]
    if e.leg not in (s.a, s.c):
        return s, []
    other = s.c if e.leg == s.a else s.a
    # A phone that transferred with REFER and never hung up is hung up too.
    detached = [Bye(s.detached)] if s.detached else []
    return replace(s, phase=ENDED, detached=""), detached + _hang_up_pair(e.leg, other)


# ---- RINGING: A on, B rings, C on hold --------------------------------------

def ringing_answered(s: State, e: Answered, rules: Rules) -> tuple[State, Effects]:
    if e.leg != s.b:
        return s, _stale(s, e)
    if s.mode:                  # a REFER: C and B at once; A is told
        new = replace(s, phase=TALKING, a=s.b, b="", a_ext="", b_ext="", mode="",
                      detached=s.a)
        return new, [Drop(s.a), Link(s.c, s.b), *_joined(s), Notify(s.a, "200 OK"),
                     Schedule("hangup", s.a, rules.detach),
                     Publish("completed", {"target": s.b_ext,
                                           "mode": "attended-refer" if s.mode == JOIN else "refer"})]
    return replace(s, phase=CONSULT), [Link(s.a, s.b), Publish("answered", {"target": s.b_ext})]


def _back_to_a(s: State, effects: Effects) -> tuple[State, Effects]:
    return replace(s, phase=TALKING, b="", b_ext=""), effects


def _restored(s: State) -> Effects:
    """B's taken-over dialog goes back to the phone when the join does not happen."""
    return [Restore(s.b)] if s.mode == JOIN else []


def _joined(s: State) -> Effects:
    return [Resume(s.c), Release(s.b)] if s.mode == JOIN else []


def _failed_back_to_a(s: State, rules: Rules, why: str, effects: Effects) -> tuple[State, Effects]:
    """A hears the failure tone (C still hears the hold media), then A and C talk again. A
    phone that asked with REFER is told instead, and is back with C at once."""
    if s.mode:
        return _back_to_a(replace(s, mode=""), effects + [
            Drop(s.b), *_restored(s), Link(s.c, s.a),
            Notify(s.a, FAILURE_STATUS.get(why, "480 Temporarily Unavailable")), _failed(s, why)])
    return _back_to_a(s, effects + [Drop(s.b), Tone(s.a), Schedule("relink", s.a, rules.tone),
                                    _failed(s, why)])


def ringing_failed(s: State, e: Failed, rules: Rules) -> tuple[State, Effects]:
    if e.leg != s.b:
        return s, []
    return _failed_back_to_a(s, rules, e.reason, [])


def ringing_timeout(s: State, e: Timeout, rules: Rules) -> tuple[State, Effects]:
    if e.kind != "no_answer" or e.leg != s.b:
        return s, []
    return _failed_back_to_a(s, rules, "no_answer", [Cancel(s.b)])


def ringing_return(s: State, e: Return, rules: Rules) -> tuple[State, Effects]:
    if e.leg != s.a:
        return s, []
    return _back_to_a(replace(s, mode=""), [Cancel(s.b), Drop(s.b), *_restored(s), Link(s.c, s.a),
                                            Publish("returned", {"target": s.b_ext})])


def ringing_hangup(s: State, e: Hangup, rules: Rules) -> tuple[State, Effects]:
    if e.leg == s.a:            # a blind transfer: C stays on hold until B answers
        return replace(s, phase=BLIND, a=""), [Accept(s.a), Drop(s.a),
                                               Publish("blind", {"target": s.b_ext})]
    if e.leg == s.c:
        return replace(s, phase=ENDED), [Cancel(s.b), *_restored(s), *_hang_up_pair(s.c, s.a),
                                         _failed(s, "client_hung_up")]
    if e.leg == s.b and s.mode == JOIN:     # B hung up the dialog being taken over
        return _failed_back_to_a(s, rules, "target_hung_up", [Relay(s.b)])
    return s, []


# ---- CONSULT: A talks to B, C on hold ----------------------------------------

def consult_hangup(s: State, e: Hangup, rules: Rules) -> tuple[State, Effects]:
    if e.leg == s.a:            # attended transfer complete
        new = replace(s, phase=TALKING, a=s.b, b="", a_ext="", b_ext="")
        return new, [Accept(s.a), Drop(s.a), Link(s.c, s.b),
                     Publish("completed", {"target": s.b_ext, "mode": "attended"})]
    if e.leg == s.b:
        return _back_to_a(s, [Accept(s.b), Drop(s.b), Link(s.c, s.a),
                              Publish("returned", {"target": s.b_ext, "reason": "target_hung_up"})])
    if e.leg == s.c:            # the consultation goes on as an ordinary call
        new = replace(s, phase=TALKING, c=s.a, a=s.b, b="", a_ext="", b_ext="")
        return new, [Accept(s.c), Drop(s.c), _failed(s, "client_hung_up")]
    return s, []


def consult_return(s: State, e: Return, rules: Rules) -> tuple[State, Effects]:
    if e.leg != s.a:
        return s, []
    return _back_to_a(s, [Bye(s.b), Drop(s.b), Link(s.c, s.a),
                          Publish("returned", {"target": s.b_ext})])


# ---- BLIND and RECALLING: A has left, C on hold ------------------------------

def blind_answered(s: State, e: Answered, rules: Rules) -> tuple[State, Effects]:
    if e.leg != s.b:
        return s, _stale(s, e)
    kind = "recalled" if s.phase == RECALLING else "completed"
    new = replace(s, phase=TALKING, a=s.b, b="", a_ext="", b_ext="", recalls_left=0, mode="")
    return new, [Link(s.c, s.b), *_joined(s), Publish(kind, {"target": s.b_ext, "mode": "blind"})]


def _call_back(s: State, rules: Rules, effects: Effects, first: bool) -> tuple[State, Effects]:
    """A blind transfer (or a call-back) failed: call A back, wait for the next try, or give up."""
    left = rules.recall_retries if first else s.recalls_left
    effects = effects + _restored(s)
    s = replace(s, mode="")
    if first and rules.recall and s.a_ext:
        b, n = _new_leg(s)
        new = replace(s, phase=RECALLING, b=b, b_ext=s.a_ext, legs=n, recalls_left=left)
        return new, effects + [Call(b, s.a_ext, client=s.c, recall=True),
                               Schedule("no_answer", b, rules.no_answer),
                               Publish("recall", {"target": s.a_ext})]
    if not first and left > 0:
        new = replace(s, phase=RECALL_WAIT, b="", recalls_left=left - 1)
        return new, effects + [Schedule("recall", s.c, rules.recall_delay)]
    new = replace(s, phase=ENDING, b="")
    return new, effects + [Tone(s.c), Schedule("hangup", s.c, rules.tone)]


def blind_failed(s: State, e: Failed, rules: Rules) -> tuple[State, Effects]:
    if e.leg != s.b:
        return s, []
    return _call_back(s, rules, [Drop(s.b), _failed(s, e.reason)], first=s.phase == BLIND)


def blind_timeout(s: State, e: Timeout, rules: Rules) -> tuple[State, Effects]:
    if e.kind != "no_answer" or e.leg != s.b:
        return s, []
    return _call_back(s, rules, [Cancel(s.b), Drop(s.b), _failed(s, "no_answer")],
                      first=s.phase == BLIND)


def b_rings(s: State, e: Progress, rules: Rules) -> tuple[State, Effects]:
    """180/183 of B (or of A called back)."""
    return s, [Publish("ringing", {"target": s.b_ext})] if e.leg == s.b else []


def blind_hangup(s: State, e: Hangup, rules: Rules) -> tuple[State, Effects]:
    if e.leg == s.b and s.mode == JOIN:     # B hung up the dialog being taken over
        return _call_back(s, rules, [Relay(s.b), Drop(s.b), _failed(s, "target_hung_up")],
                          first=True)
    if e.leg != s.c:
        return s, []
    return replace(s, phase=ENDED), [Cancel(s.b), *_restored(s), Accept(s.c), EndCall(),
                                     _failed(s, "client_hung_up")]


def recall_wait_timeout(s: State, e: Timeout, rules: Rules) -> tuple[State, Effects]:
    if e.kind != "recall" or e.leg != s.c:
        return s, []
    b, n = _new_leg(s)
    new = replace(s, phase=RECALLING, b=b, b_ext=s.a_ext, legs=n)
    return new, [Call(b, s.a_ext, client=s.c, recall=True),
                 Schedule("no_answer", b, rules.no_answer), Publish("recall", {"target": s.a_ext})]


def c_leaves(s: State, e: Hangup, rules: Rules) -> tuple[State, Effects]:
    if e.leg != s.c:
        return s, []
    return replace(s, phase=ENDED), [Accept(s.c), EndCall()]


def ending_timeout(s: State, e: Timeout, rules: Rules) -> tuple[State, Effects]:
    if e.kind != "hangup" or e.leg != s.c:
        return s, []
    return replace(s, phase=ENDED), [Bye(s.c), EndCall()]


_HANDLERS: dict[tuple[Phase, type], Handler] = {
    (TALKING, Transfer): talking_transfer,
    (TALKING, Hangup): talking_hangup,
    (TALKING, Timeout): talking_timeout,
    (RINGING, Progress): b_rings,
    (RINGING, Answered): ringing_answered,
    (RINGING, Failed): ringing_failed,
    (RINGING, Timeout): ringing_timeout,
    (RINGING, Return): ringing_return,
    (RINGING, Hangup): ringing_hangup,
    (CONSULT, Hangup): consult_hangup,
    (CONSULT, Return): consult_return,
    (BLIND, Answered): blind_answered,
    (BLIND, Failed): blind_failed,
    (BLIND, Timeout): blind_timeout,
    (BLIND, Progress): b_rings,
    (BLIND, Hangup): blind_hangup,
    (RECALLING, Answered): blind_answered,
    (RECALLING, Failed): blind_failed,
    (RECALLING, Timeout): blind_timeout,
    (RECALLING, Progress): b_rings,
    (RECALLING, Hangup): blind_hangup,
    (RECALL_WAIT, Timeout): recall_wait_timeout,
    (RECALL_WAIT, Hangup): c_leaves,
    (ENDING, Timeout): ending_timeout,
    (ENDING, Hangup): c_leaves,
}


# ---- persistence (flat string fields for a Redis hash) -----------------------

def to_fields(state: State) -> dict[str, str]:
    return {k: str(v) for k, v in state.__dict__.items()}


def from_fields(fields: Mapping[str, str]) -> State:
    if not fields:
        return State()
    base = State()
    return State(**{k: type(getattr(base, k))(fields[k]) for k in base.__dict__ if k in fields})


def state_of(record: Mapping[str, str]) -> State:
    """The machine's state in a call record (its x_* fields; x_v is their version)."""
    return from_fields({k[2:]: v for k, v in record.items() if k.startswith("x_") and k != "x_v"})


def joined_by_engine(phase: str, a: str, c: str) -> bool:
    """Whether a call's legs are joined by the engine (not plainly relayed): while a transfer
    runs, and once the talking legs are not the original dialog's two ends."""
    return bool(phase) and (phase != TALKING or spliced(a, c))


def engine_owns(record: Mapping[str, str]) -> bool:
    """Whether the transfer engine, not plain relaying, decides a call's requests: its legs
    are joined by the engine, or it is a dialog an attended REFER took over (x_join)."""
    return bool(record.get("x_join")) or joined_by_engine(
        record.get("x_phase") or "", record.get("x_a") or "", record.get("x_c") or "")
