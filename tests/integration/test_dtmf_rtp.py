"""Feature codes typed as RFC 4733 events: rtpengine reports each digit to the proxy, which
collects them like INFO digits. rtpengine drops the typist's events from a code's * on, so the
other party gets at most the *'s first packet (no end packet: no digit); other digits flow."""
import threading

from conftest import TENANT
from dtmf_calls import RELAY, completed_codes, rtp_typed_call, typed_call
from harness import read_port, wait_for


def codes(pbx):
    return completed_codes(pbx, "party", "code", "completed_by", "source")


def not_heard(listener, code, codes=1):
    """No event of the code ended at the listener; of its packets at most each *'s first."""
    heard = [d for d in listener.event_packets if d in code]
    return not set(listener.events) & set(code) and set(heard) <= {"*"} and len(heard) <= codes


def test_a_code_from_rtp_events_is_collected_and_not_heard(pbx_transfer):
    _, listener = rtp_typed_call(pbx_transfer, "*100")
    assert codes(pbx_transfer) == [("caller", "*100", "match", "rtp")]
    assert listener.events == []
    assert not_heard(listener, "*100")


def test_digits_outside_a_code_flow_to_the_other_party(pbx_transfer):
    _, listener = rtp_typed_call(pbx_transfer, "58*100#")
    assert codes(pbx_transfer) == [("caller", "*100", "match", "rtp")]
    assert listener.events == ["5", "8"]        # the # after a unique match is dropped too
    assert not_heard(listener, "*10#")


def test_after_a_code_digits_flow_again_and_the_next_code_is_held_back_too(pbx_transfer):
    _, listener = rtp_typed_call(pbx_transfer, "*100,7*100,9")
    assert codes(pbx_transfer) == [("caller", "*100", "match", "rtp")] * 2
    assert listener.events == ["7", "9"]
    assert not_heard(listener, "*10", codes=2)


def test_the_callee_may_type_codes_too(pbx_transfer):
    _, listener = rtp_typed_call(pbx_transfer, "*100", typist="callee")
    assert codes(pbx_transfer) == [("callee", "*100", "match", "rtp")]
    assert listener.events == []
    assert not_heard(listener, "*100")


def test_setting_off_collects_nothing_and_every_event_flows(pbx):
    _, listener = rtp_typed_call(pbx, "*100#")
    assert codes(pbx) == []
    assert listener.events == list("*100#")


def test_the_clients_events_are_never_collected(pbx_transfer):
    pbx = pbx_transfer
    _, listener = rtp_typed_call(pbx, "*100#", caller_ext="+4930123456",
                                 from_domain="carrier.example", port=pbx.trunk_port)
    assert codes(pbx) == []
    assert listener.events == list("*100#")


def test_info_and_rtp_for_the_same_presses_make_one_code(pbx_transfer):
    pbx = pbx_transfer
    pbx.store.ext_add(TENANT, "1000")          # *100 waits for #, so every digit must count once

    def type_rtp_too(caller):
        # The phone sends each press both ways: an RFC 4733 event as soon as its INFO is out.
        dest = read_port(pbx.workdir, caller.name)

        def type_along():
            for n, key in enumerate("*100#"):
                wait_for(lambda n=n: any(f"CSeq: {10 + n} INFO" in m for m in caller.sent("INFO ")),
                         timeout=5, interval=0.01, what=f"INFO {n}")
                caller.media.dtmf(dest, key, gap=0)
        threading.Thread(target=type_along).start()
    typed_call(pbx, [(k, RELAY) for k in "*100#"], gap_ms=400, hold_ms=1500, during=type_rtp_too)
    assert [c[:3] for c in codes(pbx)] == [("caller", "*100", "#")]
