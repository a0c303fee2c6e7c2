"""Feature codes typed with SIP INFO: collected per call and party in Redis, completed on #,
on a unique extension match or on the digit timeout, published on the PBX event stream;
digits of a code never reach the other party, other digits do."""
import socket

from conftest import TENANT
from harness import wait_for
from dtmf_calls import RELAY, completed_codes, relayed_digits, typed_call

DTMF = "application/dtmf"


def keys(text, ctype=RELAY):
    return [(k, ctype) for k in text]


def codes(pbx):
    return completed_codes(pbx, "party", "ext", "code", "completed_by")


def test_code_completes_on_hash_and_is_not_relayed(pbx_transfer):
    pbx = pbx_transfer
    pbx.store.ext_add(TENANT, "1000")          # so that *100 alone stays ambiguous
    _, b = typed_call(pbx, keys("*100#"))
    assert codes(pbx) == [("caller", "201", "*100", "#")]
    assert relayed_digits(b) == ""


def test_code_completes_as_soon_as_one_extension_matches(pbx_transfer):
    _, b = typed_call(pbx_transfer, keys("*100"))
    assert codes(pbx_transfer) == [("caller", "201", "*100", "match")]
    assert relayed_digits(b) == ""


def test_ambiguous_code_waits_for_the_digit_timeout(pbx_transfer):
    pbx = pbx_transfer
    pbx.store.ext_add(TENANT, "1000")
    pbx.store.setting_set(TENANT, "transfer_digit_timeout", "1")
    typed_call(pbx, keys("*100"), hold_ms=1800)
    assert codes(pbx) == [("caller", "201", "*100", "timeout")]


def test_short_code_completes_by_timeout(pbx_transfer):
    pbx_transfer.store.setting_set(TENANT, "transfer_digit_timeout", "1")
    typed_call(pbx_transfer, keys("*10"), hold_ms=1800)
    assert codes(pbx_transfer) == [("caller", "201", "*10", "timeout")]


def test_digits_outside_a_code_reach_the_other_party(pbx_transfer):
    _, b = typed_call(pbx_transfer, keys("12") + keys("*100") + keys("3", DTMF))
    assert relayed_digits(b) == "123"
    assert codes(pbx_transfer) == [("caller", "201", "*100", "match")]


def test_both_info_formats(pbx_transfer):
    typed_call(pbx_transfer, [("*", DTMF), ("1", RELAY), ("0", DTMF), ("0", RELAY)])
    assert codes(pbx_transfer) == [("caller", "201", "*100", "match")]


def test_signal_10_is_star(pbx_transfer):
    typed_call(pbx_transfer, [("10", RELAY)] + keys("100"))
    assert codes(pbx_transfer) == [("caller", "201", "*100", "match")]


def test_retransmitted_info_is_answered_again_and_not_counted(pbx_transfer):
    pbx = pbx_transfer
    pbx.store.ext_add(TENANT, "1000")

    def retransmit_a_digit(caller):
        # The caller's INFO for the first "0" (CSeq 12) again, byte for byte: the proxy's
        # transaction layer answers it again (to where the original came from) and no digit
        # is counted.
        wait_for(lambda: codes(pbx), timeout=5, what="the code")
        sent = [m for m in caller.sent("INFO ") if "CSeq: 12 INFO" in m][0]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            # The trace drops the body's final CRLF (Content-Length counts it).
            sock.sendto((sent.replace("\n", "\r\n") + "\r\n").encode(), ("127.0.0.1", pbx.cfg.sip_port))
    a, b = typed_call(pbx, keys("*100#"), hold_ms=1500, during=retransmit_a_digit)
    assert len([m for m in a.received("SIP/2.0 200 OK") if "CSeq: 12 INFO" in m]) == 2
    assert codes(pbx) == [("caller", "201", "*100", "#")]
    assert relayed_digits(b) == ""


def test_setting_off_collects_nothing_and_relays_everything(pbx):
    _, b = typed_call(pbx, keys("*100#"))
    assert codes(pbx) == []
    assert relayed_digits(b) == "*100#"


def test_the_clients_digits_are_never_collected(pbx_transfer):
    pbx = pbx_transfer
    _, b = typed_call(pbx, keys("*100#"), caller_ext="+4930123456", from_domain="carrier.example",
                      port=pbx.trunk_port)
    assert codes(pbx) == []
    assert relayed_digits(b) == "*100#"


def test_malformed_dtmf_info_is_400_and_changes_nothing(pbx_transfer):
    _, b = typed_call(pbx_transfer, [("X", RELAY, 400), ("*", RELAY), ("100", DTMF, 400)] + keys("100"))
    assert codes(pbx_transfer) == [("caller", "201", "*100", "match")]
    assert relayed_digits(b) == ""
