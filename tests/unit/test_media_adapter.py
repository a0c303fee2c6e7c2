"""media.Media against a recording fake ng client: the exact rtpengine command sequences
(docs/architecture.md, "Media during a transfer") and which errors each step tolerates."""
import pytest

from fakes import RecordingNg
from vpbx.adapters.rtpengine.media import GUARD_MAX_MS, HOLD_REPEAT, LINK_FLAGS, SDP_REPLACE, Media
from vpbx.adapters.rtpengine.ngclient import NgError

CALLID = "c1@host"
SDP_X = "v=0\r\no=x 1 1 IN IP4 192.0.2.1\r\n"
SDP_Y = "v=0\r\no=y 1 1 IN IP4 192.0.2.2\r\n"
LINK = {"flags": LINK_FLAGS, "replace": SDP_REPLACE}


def media(**fake):
    ng = RecordingNg(**fake)
    return Media(ng, CALLID), ng


def cmd(name, **args):
    return name, {"call_id": CALLID, **args}


def not_playing(args):
    return "Not currently playing media"


def test_offer_new_offers_the_clients_media_to_the_new_party_and_blocks_it():
    m, ng = media(replies={"offer": {"result": "ok", "sdp": "SDP for leg1"}})
    assert m.offer_new("leg1.ab", "ft1", SDP_X) == "SDP for leg1"
    assert ng.commands == [
        cmd("offer", from_tag="ft1", to_tag="leg1.ab", sdp=SDP_X, **LINK),
        cmd("block media", from_tag="leg1.ab"),
    ]


def test_offer_new_that_rtpengine_refuses_blocks_nothing():
    m, ng = media(errors={"offer": "Unknown call-id"})
    with pytest.raises(NgError, match="Unknown call-id"):
        m.offer_new("leg1.ab", "ft1", SDP_X)
    assert ng.names() == ["offer"]


LINK_SEQUENCE = [
    cmd("stop media", from_tag="x"),
    cmd("stop media", from_tag="y"),
    cmd("unsubscribe", to_tag="x"),
    cmd("unsubscribe", to_tag="y"),
    cmd("unsubscribe", to_tag="z"),
    cmd("unblock media", from_tag="x"),
    cmd("unblock media", from_tag="y"),
    cmd("offer", from_tag="x", to_tag="y", sdp=SDP_X, **LINK),
    cmd("answer", from_tag="x", to_tag="y", sdp=SDP_Y, **LINK),
]


def test_link_stops_unsubscribes_everyone_unblocks_then_offers_and_answers():
    m, ng = media(replies={"offer": {"result": "ok", "sdp": "for y"},
                           "answer": {"result": "ok", "sdp": "for x"}})
    assert m.link(("x", SDP_X), ("y", SDP_Y), ["x", "y", "z"]) == "for x"
    assert ng.commands == LINK_SEQUENCE


def test_link_goes_on_when_nothing_was_playing():
    m, ng = media(replies={"answer": {"result": "ok", "sdp": "for x"}},
                  errors={"stop media": not_playing})
    assert m.link(("x", SDP_X), ("y", SDP_Y), ["x", "y", "z"]) == "for x"
    assert ng.commands == LINK_SEQUENCE


@pytest.mark.parametrize("failing,sent", [
    ("stop media", 1), ("unsubscribe", 3), ("unblock media", 6), ("offer", 8), ("answer", 9)])
def test_link_stops_at_the_first_other_error(failing, sent):
    m, ng = media(errors={failing: "Unknown monologue tag"})
    with pytest.raises(NgError, match="Unknown monologue tag"):
        m.link(("x", SDP_X), ("y", SDP_Y), ["x", "y", "z"])
    assert ng.commands == LINK_SEQUENCE[:sent]


def test_play_stops_what_was_playing_then_plays_the_file_on_repeat():
    m, ng = media(errors={"stop media": not_playing})
    m.play("ft1", "/sounds/hold.wav")
    m.play("tt1", "/sounds/busy.wav", repeat=1)
    assert ng.commands == [
        cmd("stop media", from_tag="ft1"),
        cmd("play media", from_tag="ft1", file="/sounds/hold.wav", repeat_times=HOLD_REPEAT),
        cmd("stop media", from_tag="tt1"),
        cmd("play media", from_tag="tt1", file="/sounds/busy.wav", repeat_times=1),
    ]


@pytest.mark.parametrize("reason", ["Not currently playing media", "not currently playing"])
def test_stop_tolerates_nothing_playing(reason):
    m, ng = media(errors={"stop media": reason})
    m.stop("ft1")
    assert ng.commands == [cmd("stop media", from_tag="ft1")]


@pytest.mark.parametrize("reason", ["Unknown call-id", "Unknown monologue tag", "timed out"])
def test_stop_raises_other_errors(reason):
    m, _ = media(errors={"stop media": reason})
    with pytest.raises(NgError, match=reason):
        m.stop("ft1")


def test_mute_blocks_media_and_dtmf():
    m, ng = media()
    m.mute("ft1")
    assert ng.commands == [cmd("block media", from_tag="ft1"), cmd("block DTMF", from_tag="ft1")]


@pytest.mark.parametrize("errors", [{}, {"stop media": not_playing}])
def test_drop_stops_and_mutes_the_party_and_deletes_nothing(errors):
    m, ng = media(errors=errors)
    m.drop("leg1.ab")
    assert ng.commands == [cmd("stop media", from_tag="leg1.ab"), cmd("block media", from_tag="leg1.ab"),
                           cmd("block DTMF", from_tag="leg1.ab")]


def test_guard_drops_dtmf_from_the_next_star_and_unguard_lifts_it():
    m, ng = media()
    m.guard("ft1")
    m.unguard("ft1")
    assert ng.commands == [
        cmd("block DTMF", from_tag="ft1", trigger="*", DTMF_security_trigger="drop",
            DTMF_security_trigger_end="off", trigger_end_time=GUARD_MAX_MS),
        cmd("unblock DTMF", from_tag="ft1"),
    ]
    assert GUARD_MAX_MS == 120_000


def test_end_deletes_the_whole_call_by_call_id_only():
    m, ng = media()
    m.end()
    assert ng.commands == [("delete", {"call_id": CALLID})]


@pytest.mark.parametrize("reason", ["Unknown call-id", "unknown call"])
def test_end_tolerates_a_call_rtpengine_no_longer_has(reason):
    m, ng = media(errors={"delete": reason})
    m.end()
    assert ng.names() == ["delete"]


def test_end_raises_other_errors():
    m, _ = media(errors={"delete": "timed out"})
    with pytest.raises(NgError, match="timed out"):
        m.end()


# ---- the fake itself (reused by engine tests) ----------------------------------------------

def test_recording_ng_answers_canned_replies_and_errors_per_args():
    ng = RecordingNg(replies={"offer": lambda args: {"result": "ok", "sdp": f"for {args['to_tag']}"}},
                     errors={"stop media": lambda args: "no" if args["from_tag"] == "b" else None})
    assert ng.command("offer", call_id="c", to_tag="t") == {"result": "ok", "sdp": "for t"}
    assert ng.command("stop media", call_id="c", from_tag="a") == {"result": "ok"}
    with pytest.raises(NgError, match="^rtpengine stop media: no$"):
        ng.command("stop media", call_id="c", from_tag="b")
    assert ng.sent("from_tag") == [("offer", None), ("stop media", "a"), ("stop media", "b")]
    assert ng.ping() and ng.calls() == ["c"]
    ng.command("delete", call_id="c")
    assert ng.calls() == []
    ng.clear()
    assert ng.commands == []
