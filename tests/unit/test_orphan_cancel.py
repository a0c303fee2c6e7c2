"""Messages of an INVITE transaction a restarted Kamailio lost (adapters/kamailio/orphans.py):
a CANCEL ends the unanswered call's media only when it comes from where the INVITE came
from with its From tag; a final reply counts only from where the INVITE was relayed to.
Both are checked against the offer's rtpengine label; anything else changes nothing."""
import pytest
from fakes import FakeSip, FakeStore, RecordingNg

from vpbx.adapters.kamailio.orphans import DROP, FORWARD, LOST, Orphans, offer_label
from vpbx.core.routing import uri_hostport

CALLID, TAG, SRC, CALLEE = "c1@x", "ftag", "udp:127.0.0.1:5070", "127.0.0.1:5080"
LABEL = offer_label(SRC, f"sip:201@{CALLEE};transport=udp")


def orphans(sip, tags, calls=None, errors=None):
    ng = RecordingNg(replies={"query": {"result": "ok", "tags": tags}}, errors=errors)
    return Orphans(FakeStore(calls=calls), ng, sip), ng


def offer(label=LABEL):
    return {TAG: {"tag": TAG, "label": label}}


def cancel(tags, *, src=SRC, ftag=TAG, calls=None, errors=None):
    sip = FakeSip("CANCEL", pv={"$ci": CALLID, "$ft": ftag}, src=src)
    route, ng = orphans(sip, tags, calls, errors)
    route.cancel()
    return ng.sent("call_id")


def test_the_label_names_the_invites_source_and_where_it_went():
    assert LABEL == "udp:127.0.0.1:5070>127.0.0.1:5080"
    assert uri_hostport("sip:+49301@[::1]") == "[::1]:5060"
    assert uri_hostport("sips:a@example.org:5071;lr") == "example.org:5071"


def test_the_invites_own_cancel_deletes_the_unanswered_calls_media():
    assert cancel(offer()) == [("query", CALLID), ("delete", CALLID)]


@pytest.mark.parametrize("case", ["other source", "other tag", "no label", "answered"])
def test_any_other_cancel_ends_nothing(case):
    tags = offer(LABEL.replace("5070", "5071") if case == "other source" else LABEL)
    if case == "no label":
        del tags[TAG]["label"]
    sent = cancel(tags, ftag="other" if case == "other tag" else TAG,
                  calls={CALLID: {"state": "confirmed"}} if case == "answered" else None)
    assert sent == [("query", CALLID)]


def test_a_cancel_for_a_call_rtpengine_does_not_have_ends_nothing():
    assert cancel({}, errors={"query": "Unknown call-ID"}) == [("query", CALLID)]


def reply(status, *, src=f"udp:{CALLEE}", method="INVITE", callid=CALLID, calls=None,
          tags=None):
    sip = FakeSip(pv={"$rs": status, "$ci": callid, "$rm": method, "$ft": TAG, "$cs": "1",
                      "$hdr(Via)": "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKp, "
                                   "SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKc",
                      "$hdr(CSeq)": "1 INVITE",
                      "$hdr(From)": f"<sip:200@t1.test>;tag={TAG}",
                      "$hdr(To)": "<sip:201@t1.test>;tag=b1",
                      "$ct": f"<sip:201@{CALLEE}>"}, src=src)
    route, ng = orphans(sip, offer() if tags is None else tags, calls)
    return route.reply(), ng.names(), sip


def test_the_callees_error_ends_the_media_and_goes_on_to_the_caller():
    verdict, commands, sip = reply(486)
    assert (verdict, commands, sip.sent) == (FORWARD, ["query", "delete"], [])


def test_the_callees_2xx_ends_the_call_set_up_on_both_sides():
    verdict, commands, sip = reply(200)
    assert verdict == DROP and commands == ["query", "delete"]
    [(_, uri, answer)] = [d for d in sip.did if d[0] == "send_data"]
    assert uri == "sip:127.0.0.1:5070;transport=udp"            # where the INVITE came from
    assert answer.startswith(f"SIP/2.0 {LOST[0]} {LOST[1]}\r\nVia: SIP/2.0/UDP 127.0.0.1:5070")
    assert "To: <sip:201@t1.test>;tag=b1\r\n" in answer and "CSeq: 1 INVITE\r\n" in answer
    assert [(m, ruri, hop) for m, ruri, hop, *_ in sip.sent] == [
        (m, f"sip:201@{CALLEE}", f"sip:{CALLEE};transport=udp") for m in ("ACK", "BYE")]
    assert "CSeq: 1 ACK" in sip.sent[0][4] and "CSeq: 2 BYE" in sip.sent[1][4]


@pytest.mark.parametrize("status", [200, 486])
def test_a_strangers_final_reply_is_dropped_and_changes_nothing(status):
    verdict, commands, sip = reply(status, src="udp:127.0.0.7:5080")
    assert (verdict, commands, sip.sent, sip.did) == (DROP, ["query"], [], [])


@pytest.mark.parametrize("case", ["provisional", "bye", "leg", "answered call"])
def test_other_replies_are_forwarded_as_kamailio_does_by_itself(case):
    verdict, commands, sip = reply(
        180 if case == "provisional" else 200, method="BYE" if case == "bye" else "INVITE",
        callid=f"vpbx-leg1-{CALLID}" if case == "leg" else CALLID,
        calls={CALLID: {"state": "confirmed"}})
    assert verdict == FORWARD and "delete" not in commands and sip.sent == []
