import pytest

from vpbx.core.dtmf import (BadDtmf, Collecting, Complete, Discard, Duplicate, Match, Pass, Rules, State,
                       candidate, event_digit, expire, from_fields, info_digit, press, report_digit,
                       to_fields)

RULES = Rules(timeout=3.0, max_digits=6, max_rate=10, duplicate_window=0.4)


@pytest.mark.parametrize("ctype,body,digit", [
    ("application/dtmf-relay", "Signal=5\r\nDuration=160\r\n", "5"),
    ("application/dtmf-relay", "Signal= *\nDuration= 100", "*"),
    ("application/dtmf-relay", "signal=10\r\nduration=160", "*"),
    ("application/dtmf-relay", "Signal=11", "#"),
    ("Application/DTMF-Relay; charset=x", "Signal=#", "#"),
    ("application/dtmf", "*", "*"),
    ("application/dtmf", " 7\r\n", "7"),
    ("application/dtmf", "11", "#"),
])
def test_info_bodies(ctype, body, digit):
    assert info_digit(ctype, body) == digit


@pytest.mark.parametrize("ctype,body", [
    ("application/dtmf-relay", "Duration=160"),
    ("application/dtmf-relay", "Signal=X"),
    ("application/dtmf-relay", "Signal=16"),
    ("application/dtmf", ""),
    ("application/dtmf", "12345"),
    ("text/plain", "5"),
])
def test_bad_info_bodies(ctype, body):
    with pytest.raises(BadDtmf):
        info_digit(ctype, body)


def test_event_digits():
    assert [event_digit(e) for e in (0, 9, 10, 11)] == ["0", "9", "*", "#"]
    for bad in (-1, 16, "5", None, True, 1.0, 2 ** 64):
        with pytest.raises(BadDtmf):
            event_digit(bad)


def test_dtmf_report():
    report = '{"callid": "abc@h", "source_tag": "t1", "tags": ["t1", "t2"], "type": "DTMF", ' \
             '"event": 10, "duration": 160}'
    assert report_digit(report) == ("abc@h", "t1", "*")


@pytest.mark.parametrize("text", [
    "", "not json", "[1, 2]", "10", "null", '"DTMF"', "[" * 100000, '{"a":' * 100000,
    '{"callid": 5, "source_tag": "t", "event": 1}',
    '{"callid": "c", "source_tag": ["t"], "event": 1}',
    '{"callid": "c", "source_tag": "t"}',
    '{"callid": "c", "source_tag": "t", "event": true}',
    '{"callid": "c", "source_tag": "t", "event": "5"}',
    '{"callid": "\\ud800", "source_tag": "t", "event": 1}',
    '{"callid": "a b", "source_tag": "t", "event": 1}',
    '{"callid": "", "source_tag": "t", "event": 1}',
    '{"callid": "c", "source_tag": "\\u0000", "event": 1}',
])
def test_what_is_no_dtmf_report(text):
    with pytest.raises(BadDtmf):
        report_digit(text)


def typed(digits, t0=100.0, step=0.5, source="info", match=lambda d: Match(), state=State(), instant=()):
    """Feed digits; return the final state and the list of outcomes."""
    outcomes = []
    for i, digit in enumerate(digits):
        facts = match(candidate(state, digit)) if candidate(state, digit) else Match()
        state, outcome = press(state, digit, source, t0 + i * step, RULES, facts, frozenset(instant))
        outcomes.append(outcome)
    return state, outcomes


def extensions(*numbers):
    return lambda d: Match(exact=d in numbers, longer=any(n.startswith(d) and n != d for n in numbers))


def test_digits_without_star_pass_through():
    state, outcomes = typed("123")
    assert outcomes == [Pass(), Pass(), Pass()] and state.code == ""


def test_code_completes_on_hash():
    state, outcomes = typed("*100#")
    # Each digit at 0.5 s intervals from t=100 pushes the 3 s deadline on.
    assert outcomes[:4] == [Collecting("*", 103.0), Collecting("*1", 103.5),
                            Collecting("*10", 104.0), Collecting("*100", 104.5)]
    assert outcomes[-1] == Complete("*100", "#") and state.code == ""


def test_code_completes_on_unique_match():
    _, outcomes = typed("*100", match=extensions("100", "200"))
    assert outcomes[-1] == Complete("*100", "match")


def test_code_waits_while_a_longer_extension_starts_with_it():
    state, outcomes = typed("*100", match=extensions("100", "1000"))
    assert outcomes[-1] == Collecting("*100", 104.5)
    assert expire(state, 104.4) == (state, None)
    idle, outcome = expire(state, 104.5)
    assert outcome == Complete("*100", "timeout") and idle.code == ""


def test_short_code_completes_by_timeout():
    state, _ = typed("*10", match=extensions("100"))
    assert expire(state, state.deadline)[1] == Complete("*10", "timeout")


def test_lone_star_times_out_into_nothing():
    state, _ = typed("*")
    assert expire(state, state.deadline)[1] == Discard("*", "timeout")
    assert typed("*#")[1][-1] == Discard("*", "empty")


def test_instant_code_completes_at_once():
    assert typed("*1", instant={"1"})[1][-1] == Complete("*1", "instant")


def test_star_restarts_a_code():
    state, outcomes = typed("*12*100#")
    assert outcomes[3] == Collecting("*", 101.5 + 3.0) and outcomes[-1] == Complete("*100", "#")


def test_too_long_code_is_discarded():
    assert typed("*1234567")[1][-1] == Discard("*1234567", "too long")


def test_letters_inside_a_code_discard_it():
    assert typed("*1A")[1][-1] == Discard("*1A", "invalid")


def test_flood_is_discarded():
    _, outcomes = typed("*" + "1" * 11, step=0.01)
    assert Discard in {type(o) for o in outcomes}
    assert any(isinstance(o, Discard) and o.reason == "flood" for o in outcomes)


def test_info_and_rtp_copies_of_one_press_count_once():
    state = State()
    sequence = [("*", "info", 0.0), ("*", "rtp", 0.05), ("1", "rtp", 0.5), ("1", "info", 0.52),
                ("1", "info", 1.0), ("1", "rtp", 1.1), ("#", "info", 1.5), ("#", "rtp", 1.55)]
    outcomes = []
    for digit, source, t in sequence:
        state, outcome = press(state, digit, source, t, RULES)
        outcomes.append(outcome)
    assert [type(o) for o in outcomes] == [Collecting, Duplicate, Collecting, Duplicate,
                                           Collecting, Duplicate, Complete, Duplicate]
    assert outcomes[6] == Complete("*11", "#")


def test_repeated_key_from_one_source_is_two_presses():
    _, outcomes = typed("*11#", step=0.1)
    assert outcomes[-1] == Complete("*11", "#")


def test_state_round_trips_through_redis_fields():
    state, _ = typed("*10")
    assert from_fields(to_fields(state)) == state
    assert from_fields({}) == State()
