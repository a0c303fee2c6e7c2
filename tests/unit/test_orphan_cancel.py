"""A CANCEL that no INVITE transaction matches (Invites.orphan_cancel): the unanswered
call's media session ends only when the CANCEL comes from where the INVITE came from (the
offer's rtpengine label) with the INVITE's From tag."""
import pytest
from fakes import FakeSip, FakeStore, RecordingNg

from vpbx.adapters.kamailio.invites import Invites

CALLID, TAG, SRC = "c1@x", "ftag", "udp:127.0.0.1:5070"


def orphan_cancel(tags, *, src=SRC, ftag=TAG, calls=None, errors=None):
    ng = RecordingNg(replies={"query": {"result": "ok", "tags": tags}}, errors=errors)
    sip = FakeSip("CANCEL", pv={"$ci": CALLID, "$ft": ftag}, src=src)
    Invites(FakeStore(calls=calls), ng, sip, guard=None, auth=None).orphan_cancel()
    return ng.sent("call_id")


def offer_from(source):
    return {TAG: {"tag": TAG, "label": source}}


def test_the_invites_own_cancel_deletes_the_unanswered_calls_media():
    assert orphan_cancel(offer_from(SRC)) == [("query", CALLID), ("delete", CALLID)]


@pytest.mark.parametrize("case", ["other source", "other tag", "no label", "answered"])
def test_anything_else_ends_nothing(case):
    tags = offer_from("udp:127.0.0.7:5070" if case == "other source" else SRC)
    if case == "no label":
        del tags[TAG]["label"]
    sent = orphan_cancel(tags, ftag="other" if case == "other tag" else TAG,
                         calls={CALLID: {"state": "confirmed"}} if case == "answered" else None)
    assert sent == [("query", CALLID)]


def test_a_call_rtpengine_does_not_have_ends_nothing():
    assert orphan_cancel({}, errors={"query": "Unknown call-ID"}) == [("query", CALLID)]
