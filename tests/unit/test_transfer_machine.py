"""The transfer state machine: every flow of the issue, and every phase x event pair."""
import dataclasses
import itertools

import pytest

from vpbx.core import transfer as t
from vpbx.core.call import Takeover
from vpbx.core.transfer import (Accept, Answered, Bye, Call, Cancel, Drop, EndCall, Failed, Hangup,
                           Hold, Link, Notify, Progress, Publish, Relay, Release, Restore, Resume, Return,
                           RelayedBye, Ringback, Rules, Schedule, State, Timeout, Tone, Transfer)

RULES = Rules(no_answer=15, recall=True, recall_retries=2, recall_delay=10, tone=1.5)
# C is the caller of the original dialog, A (extension 201) the callee; B is extension 100.
START = State(c="caller", a="callee")


def run(*events, state=START, rules=RULES):
    """Apply events in turn -> (final state, [effects of each step])."""
    steps = []
    for event in events:
        state, effects = t.step(state, event, rules)
        steps.append(effects)
    return state, steps


def kinds(effects):
    return [e.kind for e in effects if isinstance(e, Publish)]


def without_publish(effects):
    return [e for e in effects if not isinstance(e, Publish)]


STARTED = Transfer("callee", "100", leg_ext="201")


def test_a_code_starts_the_transfer():
    state, (effects,) = run(STARTED)
    assert state == State(phase=t.RINGING, c="caller", a="callee", b="leg1", a_ext="201",
                          b_ext="100", legs=1)
    assert without_publish(effects) == [Hold("caller", mute=("callee",)), Ringback("callee"),
                                        Call("leg1", "100", client="caller", transferor="callee"),
                                        Schedule("no_answer", "leg1", 15)]
    assert effects[-1] == Publish("started", {"transferor": "callee", "client": "caller",
                                              "target": "100"})


def test_the_caller_may_be_the_transferor():
    state, _ = run(Transfer("caller", "100"))
    assert (state.a, state.c) == ("caller", "callee")


def test_an_invalid_target_gives_a_tone_and_nothing_else():
    state, (effects,) = run(Transfer("callee", "999", refused="no_such_extension"))
    assert state == START
    assert effects[0] == Tone("callee") and kinds(effects) == ["failed"]


def test_blind_transfer():
    state, steps = run(STARTED, Progress("leg1"), Hangup("callee"), Answered("leg1"))
    assert kinds(steps[1]) == ["ringing"]
    assert without_publish(steps[2]) == [Accept("callee"), Drop("callee")]
    assert without_publish(steps[3]) == [Link("caller", "leg1")]
    assert kinds(steps[3]) == ["completed"]
    assert (state.phase, state.c, state.a, state.b) == (t.TALKING, "caller", "leg1", "")


def test_attended_transfer():
    state, steps = run(STARTED, Answered("leg1"), Hangup("callee"))
    assert without_publish(steps[1]) == [Link("callee", "leg1")]
    assert state.phase == t.TALKING and (state.c, state.a) == ("caller", "leg1")
    assert without_publish(steps[2]) == [Accept("callee"), Drop("callee"), Link("caller", "leg1")]
    assert kinds(steps[2]) == ["completed"]


def test_return_while_b_rings():
    state, steps = run(STARTED, Return("callee"))
    assert without_publish(steps[1]) == [Cancel("leg1"), Drop("leg1"), Link("caller", "callee")]
    assert state == dataclasses.replace(START, a_ext="201", legs=1)
    assert kinds(steps[1]) == ["returned"]


def test_return_during_consultation():
    state, steps = run(STARTED, Answered("leg1"), Return("callee"))
    assert without_publish(steps[2]) == [Bye("leg1"), Drop("leg1"), Link("caller", "callee")]
    assert state.phase == t.TALKING and (state.c, state.a, state.b) == ("caller", "callee", "")


@pytest.mark.parametrize("reason", ["busy", "rejected", "unavailable"])
def test_b_fails_while_a_is_on_a_hears_a_tone_then_talks_to_c_again(reason):
    state, steps = run(STARTED, Failed("leg1", reason), Timeout("relink", "callee"))
    assert without_publish(steps[1]) == [Drop("leg1"), Tone("callee"),
                                         Schedule("relink", "callee", 1.5)]
    assert steps[1][-1] == Publish("failed", {"reason": reason, "target": "100"})
    assert steps[2] == [Link("caller", "callee")]
    assert state.phase == t.TALKING and state.a == "callee"


def test_b_does_not_answer_in_time():
    state, steps = run(STARTED, Timeout("no_answer", "leg1"))
    assert without_publish(steps[1]) == [Cancel("leg1"), Drop("leg1"), Tone("callee"),
                                         Schedule("relink", "callee", 1.5)]
    assert state.phase == t.TALKING


def test_a_stale_timer_changes_nothing():
    state, steps = run(STARTED, Return("callee"), STARTED, Timeout("no_answer", "leg1"))
    assert state.phase == t.RINGING and state.b == "leg2" and steps[3] == []


def test_b_hangs_up_during_consultation():
    state, steps = run(STARTED, Answered("leg1"), Hangup("leg1"))
    assert without_publish(steps[2]) == [Accept("leg1"), Drop("leg1"), Link("caller", "callee")]
    assert state.phase == t.TALKING and state.a == "callee"


def test_c_hangs_up_while_b_rings():
    state, steps = run(STARTED, Hangup("caller"))
    # A and C are the two ends of the original dialog: C's BYE goes on to A.
    assert without_publish(steps[1]) == [Cancel("leg1"), Relay("caller"), EndCall()]
    assert state.phase == t.ENDED


def test_c_hangs_up_during_consultation_and_a_talks_on_with_b():
    state, steps = run(STARTED, Answered("leg1"), Hangup("caller"))
    assert without_publish(steps[2]) == [Accept("caller"), Drop("caller")]
    assert state.phase == t.TALKING and {state.c, state.a} == {"callee", "leg1"}
    state, (effects,) = run(Hangup("callee"), state=state)
    assert effects == [Accept("callee"), Bye("leg1"), EndCall()]


def test_c_hangs_up_during_a_blind_transfer():
    state, steps = run(STARTED, Hangup("callee"), Hangup("caller"))
    assert without_publish(steps[2]) == [Cancel("leg1"), Accept("caller"), EndCall()]
    assert state.phase == t.ENDED


def test_after_a_transfer_a_bye_from_either_side_ends_the_other():
    done, _ = run(STARTED, Hangup("callee"), Answered("leg1"))
    assert t.step(done, Hangup("caller"), RULES)[1] == [Accept("caller"), Bye("leg1"), EndCall()]
    assert t.step(done, Hangup("leg1"), RULES)[1] == [Accept("leg1"), Bye("caller"), EndCall()]


def test_an_untouched_call_ends_as_a_proxy_ends_it():
    assert t.step(START, Hangup("callee"), RULES) == (
        dataclasses.replace(START, phase=t.ENDED), [Relay("callee"), EndCall()])


# ---- a BYE relayed while Redis was unreachable (docs/architecture.md) ---------------

def test_a_plain_call_whose_bye_was_relayed_only_ends():
    assert t.step(START, RelayedBye("callee"), RULES) == (
        dataclasses.replace(START, phase=t.ENDED), [EndCall()])


def test_a_bye_relayed_while_b_rings_cancels_b():
    for ringing in (run(STARTED)[0], run(STARTED, Hangup("callee"))[0]):      # attended, blind
        state, effects = t.step(ringing, RelayedBye("caller"), RULES)
        assert without_publish(effects) == [Cancel("leg1"), EndCall()]
        assert [e.details["reason"] for e in effects if isinstance(e, Publish)] == ["redis_unreachable"]
        assert state.phase == t.ENDED


def test_a_bye_relayed_during_a_consultation_hangs_up_b():
    consult = run(STARTED, Answered("leg1"))[0]
    assert without_publish(t.step(consult, RelayedBye("callee"), RULES)[1]) == [Bye("leg1"), EndCall()]


def test_a_bye_relayed_after_a_transfer_hangs_up_the_party_the_proxy_joined():
    done, _ = run(STARTED, Hangup("callee"), Answered("leg1"))
    assert t.step(done, RelayedBye("caller"), RULES)[1] == [Bye("leg1"), EndCall()]


def test_a_bye_relayed_from_a_party_that_has_left_changes_nothing():
    done, _ = run(STARTED, Hangup("callee"), Answered("leg1"))
    assert t.step(done, RelayedBye("callee"), RULES) == (done, [])


def test_a_call_answered_without_rtpengine_is_ended_both_ways():
    assert t.step(START, Timeout(t.UNANCHORED, "callee"), RULES) == (
        dataclasses.replace(START, phase=t.ENDED), [Bye("caller"), Bye("callee"), EndCall()])
    # A transfer started meanwhile (rtpengine back) is left alone.
    assert t.step(run(STARTED)[0], Timeout(t.UNANCHORED, "callee"), RULES)[1] == []


def test_b_transfers_the_client_on():
    done, _ = run(STARTED, Hangup("callee"), Answered("leg1"))
    state, (effects,) = run(Transfer("leg1", "102", leg_ext="100"), state=done)
    assert (state.phase, state.a, state.c, state.b) == (t.RINGING, "leg1", "caller", "leg2")
    assert Call("leg2", "102", client="caller", transferor="leg1") in effects
    state, steps = run(Answered("leg2"), Hangup("leg1"), state=state)
    assert without_publish(steps[1]) == [Accept("leg1"), Drop("leg1"), Link("caller", "leg2")]


def test_failed_blind_transfer_calls_a_back():
    state, steps = run(STARTED, Hangup("callee"), Failed("leg1", "busy"), Progress("leg2"),
                       Answered("leg2"))
    assert without_publish(steps[2]) == [Drop("leg1"),
                                         Call("leg2", "201", client="caller", recall=True),
                                         Schedule("no_answer", "leg2", 15)]
    assert kinds(steps[2]) == ["failed", "recall"]
    assert without_publish(steps[4]) == [Link("caller", "leg2")]
    assert kinds(steps[4]) == ["recalled"]
    assert (state.phase, state.c, state.a) == (t.TALKING, "caller", "leg2")


def test_call_backs_are_retried_then_c_hears_a_tone_and_is_hung_up():
    state, steps = run(STARTED, Hangup("callee"), Timeout("no_answer", "leg1"),  # call-back leg2
                       Failed("leg2", "busy"), Timeout("recall", "caller"),                  # retry 1: leg3
                       Timeout("no_answer", "leg3"), Timeout("recall", "caller"),            # retry 2: leg4
                       Failed("leg4", "unavailable"), Timeout("hangup", "caller"))
    assert Cancel("leg1") in steps[2] and Call("leg2", "201", "caller", recall=True) in steps[2]
    assert Schedule("recall", "caller", 10) in steps[3]
    assert Call("leg3", "201", "caller", recall=True) in steps[4]
    assert Cancel("leg3") in steps[5]
    assert Call("leg4", "201", "caller", recall=True) in steps[6]
    assert without_publish(steps[7]) == [Drop("leg4"), Tone("caller"),
                                         Schedule("hangup", "caller", 1.5)]
    assert steps[8] == [Bye("caller"), EndCall()]
    assert state.phase == t.ENDED


def test_without_call_back_a_failed_blind_transfer_ends_with_a_tone():
    rules = dataclasses.replace(RULES, recall=False)
    state, steps = run(STARTED, Hangup("callee"), Failed("leg1", "busy"), rules=rules)
    assert without_publish(steps[2]) == [Drop("leg1"), Tone("caller"),
                                         Schedule("hangup", "caller", 1.5)]
    assert state.phase == t.ENDING


def test_c_may_hang_up_while_waiting_for_the_call_back():
    state, _ = run(STARTED, Hangup("callee"), Failed("leg1", "busy"), Failed("leg2", "busy"))
    assert state.phase == t.RECALL_WAIT
    assert t.step(state, Hangup("caller"), RULES)[1] == [Accept("caller"), EndCall()]


def test_a_200_that_raced_the_cancel_is_hung_up():
    state, steps = run(STARTED, Return("callee"), Answered("leg1"))
    assert steps[2] == [Bye("leg1")] and state.phase == t.TALKING


def test_a_retransmitted_2xx_of_a_leg_in_the_call_changes_nothing():
    done, _ = run(STARTED, Hangup("callee"), Answered("leg1"))
    assert t.step(done, Answered("leg1"), RULES) == (done, [])
    consult, _ = run(STARTED, Answered("leg1"))
    assert t.step(consult, Answered("leg1"), RULES) == (consult, [])


def test_codes_during_a_transfer_other_than_return_are_ignored():
    ringing, _ = run(STARTED)
    assert t.step(ringing, Transfer("callee", "102"), RULES) == (ringing, [])
    assert t.step(ringing, Return("caller"), RULES) == (ringing, [])


def test_state_survives_the_round_trip_through_redis_fields():
    state, _ = run(STARTED, Hangup("callee"), Failed("leg1", "busy"))
    fields = t.to_fields(state)
    assert all(isinstance(v, str) for v in fields.values())
    assert t.from_fields(fields) == state
    assert t.from_fields({}) == State()


# ---- a phone's REFER, terminated by the proxy (blind) ------------------------------

REFERRED = Transfer("callee", "100", leg_ext="201", refer=True)


def test_a_refer_starts_a_transfer_without_ringback_and_tells_the_phone():
    state, (effects,) = run(REFERRED)
    assert (state.phase, state.mode) == (t.RINGING, "refer")
    assert without_publish(effects) == [Hold("caller", mute=("callee",)),
                                        Notify("callee", "100 Trying", final=False),
                                        Call("leg1", "100", client="caller", transferor="callee"),
                                        Schedule("no_answer", "leg1", 15)]


def test_a_refer_transfer_connects_c_and_b_when_b_answers():
    state, steps = run(REFERRED, Answered("leg1"), Hangup("callee"))
    assert without_publish(steps[1]) == [Drop("callee"), Link("caller", "leg1"),
                                         Notify("callee", "200 OK"),
                                         Schedule("hangup", "callee", RULES.detach)]
    assert steps[2] == [Accept("callee"), Drop("callee")]        # the phone's BYE
    assert (state.phase, state.c, state.a, state.detached) == (t.TALKING, "caller", "leg1", "")
    assert run(Timeout("hangup", "callee"), state=state) == (state, [[]])   # then: nothing


def test_a_phone_that_does_not_hang_up_after_its_refer_transfer_is_hung_up():
    state, steps = run(REFERRED, Answered("leg1"), Timeout("hangup", "callee"))
    assert steps[2] == [Bye("callee")]
    assert (state.phase, state.a, state.detached) == (t.TALKING, "leg1", "")


def test_a_refer_transfer_that_fails_tells_the_phone_and_it_is_back_with_c():
    state, steps = run(REFERRED, Failed("leg1", "busy"))
    assert without_publish(steps[1]) == [Drop("leg1"), Link("caller", "callee"),
                                         Notify("callee", "486 Busy Here")]
    assert (state.phase, state.mode, state.a) == (t.TALKING, "", "callee")


def test_a_refused_refer_target_is_reported_to_the_phone():
    state, (effects,) = run(Transfer("callee", "999", refused="no_such_extension", refer=True))
    assert state == START and effects[0] == Notify("callee", "404 Not Found")


def test_the_phone_hanging_up_before_b_answers_makes_it_blind():
    state, _ = run(REFERRED, Hangup("callee"), Answered("leg1"))
    assert (state.phase, state.c, state.a) == (t.TALKING, "caller", "leg1")


# ---- a phone's REFER with Replaces, terminated by the proxy (attended) ------------------

JOINED = Transfer("callee", "100", leg_ext="201", refer=True, join=Takeover("y@h", "callee"))


def test_an_attended_refer_takes_over_the_dialog_with_b_instead_of_calling_it():
    state, (effects,) = run(JOINED)
    assert (state.phase, state.mode, state.b) == (t.RINGING, "join", "leg1")
    assert without_publish(effects) == [
        Hold("caller", mute=("callee",)), Notify("callee", "100 Trying", final=False),
        Call("leg1", "100", client="caller", transferor="callee", join=Takeover("y@h", "callee")),
        Schedule("no_answer", "leg1", 15)]
    assert effects[-1].details["mode"] == "attended-refer"


def test_an_attended_refer_joins_c_and_b_and_hangs_up_the_phones_end_of_the_other_dialog():
    state, steps = run(JOINED, Answered("leg1"), Hangup("callee"))
    assert without_publish(steps[1]) == [Drop("callee"), Link("caller", "leg1"), Resume("caller"),
                                         Release("leg1"), Notify("callee", "200 OK"),
                                         Schedule("hangup", "callee", RULES.detach)]
    assert steps[2] == [Accept("callee"), Drop("callee")]
    assert (state.phase, state.c, state.a, state.mode) == (t.TALKING, "caller", "leg1", "")


def test_a_failed_join_gives_the_other_dialog_back_and_tells_the_phone():
    state, steps = run(JOINED, Failed("leg1", "unavailable"))
    assert without_publish(steps[1]) == [Drop("leg1"), Restore("leg1"), Link("caller", "callee"),
                                         Notify("callee", "480 Temporarily Unavailable")]
    assert (state.phase, state.mode, state.a) == (t.TALKING, "", "callee")


def test_b_hanging_up_the_dialog_being_taken_over_ends_it_as_usual():
    state, steps = run(JOINED, Hangup("leg1"))
    assert steps[1][0] == Relay("leg1") and Restore("leg1") in steps[1]
    assert (state.phase, state.a) == (t.TALKING, "callee")


def test_the_client_hanging_up_during_a_join_gives_the_other_dialog_back():
    state, steps = run(JOINED, Hangup("caller"))
    assert Restore("leg1") in steps[1] and EndCall() in steps[1]


def test_the_phone_hanging_up_during_a_join_still_joins():
    state, steps = run(JOINED, Hangup("callee"), Answered("leg1"))
    assert Release("leg1") in steps[2]
    assert (state.phase, state.c, state.a, state.mode) == (t.TALKING, "caller", "leg1", "")


# ---- every phase x every event: the machine never breaks ------------------------

LEGS = ("caller", "callee", "leg1", "leg2", "nobody")
EVENTS = ([Transfer(leg, "100", "201") for leg in LEGS]
          + [Transfer(leg, "100", "201", refer=True) for leg in LEGS]
          + [Transfer(leg, "100", "201", refer=True, join=Takeover("y@h", "callee")) for leg in LEGS]
          + [Transfer(leg, "999", "201", refused="no_such_extension") for leg in LEGS]
          + [Return(leg) for leg in LEGS] + [Progress(leg) for leg in LEGS]
          + [Answered(leg) for leg in LEGS] + [Failed(leg, "busy") for leg in LEGS]
          + [Hangup(leg) for leg in LEGS] + [RelayedBye(leg) for leg in LEGS]
          + [Timeout(kind, leg) for kind in ("no_answer", "relink", "recall", "hangup", t.UNANCHORED)
             for leg in LEGS + ("",)])
STATES = {
    t.TALKING: START,
    t.RINGING: run(STARTED)[0],
    t.CONSULT: run(STARTED, Answered("leg1"))[0],
    t.BLIND: run(STARTED, Hangup("callee"))[0],
    t.RECALLING: run(STARTED, Hangup("callee"), Failed("leg1", "busy"))[0],
    t.RECALL_WAIT: run(STARTED, Hangup("callee"), Failed("leg1", "busy"), Failed("leg2", "x"))[0],
    t.ENDING: run(STARTED, Hangup("callee"), Failed("leg1", "busy"), rules=Rules(recall=False))[0],
    t.ENDED: run(Hangup("caller"))[0],
}
MORE_STATES = [run(REFERRED)[0], run(REFERRED, Answered("leg1"))[0],     # refer ringing, detached
               run(JOINED)[0], run(JOINED, Hangup("callee"))[0]]        # join ringing, join blind
EFFECTS = (Hold, Ringback, Link, Tone, Call, Cancel, Bye, Accept, Relay, Drop, EndCall, Schedule,
           Publish, Notify, Release, Restore, Resume)


def test_the_fixtures_cover_every_phase():
    assert set(STATES) == set(t.PHASES)
    assert all(STATES[phase].phase == phase for phase in STATES)


@pytest.mark.parametrize("state,event",
                         itertools.product(list(STATES.values()) + MORE_STATES, EVENTS), ids=str)
def test_every_phase_and_event(state, event):
    phase = state.phase
    new, effects = t.step(state, event, RULES)
    assert new.phase in t.PHASES
    assert all(isinstance(e, EFFECTS) for e in effects)
    legs_now = {state.a, state.b, state.c, state.detached} - {""}
    # A leg the call does not know is never touched, except to hang up a stray answered leg.
    if getattr(event, "leg", "") not in legs_now:
        assert new == state
        assert effects in ([], [Bye(event.leg)])
    # A finished call stays finished; at most it hangs up a stray answered leg.
    if phase == t.ENDED:
        assert new == state and effects in ([], [Bye(getattr(event, "leg", ""))])
    # The call ends only with an EndCall effect, and every EndCall ends it.
    if phase != t.ENDED:
        assert (new.phase == t.ENDED) == any(isinstance(e, EndCall) for e in effects)
    # Every Call is followed by its no-answer timer.
    for e in effects:
        if isinstance(e, Call):
            assert Schedule("no_answer", e.leg, RULES.no_answer) in effects
    # Whoever is on hold or gets a tone is a leg of the call; media is offered from the client.
    for e in effects:
        if isinstance(e, (Hold, Ringback, Tone)):
            assert e.leg in legs_now | {new.b}
        if isinstance(e, Call):
            assert e.client == new.c
    # A transfer never puts the client's own leg on a call or links a leg with itself.
    for e in effects:
        if isinstance(e, Link):
            assert e.x != e.y
