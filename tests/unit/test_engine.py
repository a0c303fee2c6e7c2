"""The transfer engine with fakes (a dict-backed store, ng and SIP that record what they were
asked): each transition's effects on the wire, its rtpengine commands, and its Redis round
trips — one commit per event, and no write after it."""
import pytest
from fakes import FakeStore, RecordingNg, RecordingSip

from vpbx.core import transfer as t
from vpbx.core.call import Takeover
from vpbx.engine.transfers import Engine
from vpbx.adapters.rtpengine.media import Media
from vpbx.adapters.rtpengine.sounds import Sounds

CALLID, TENANT = "c1@h", "t1.test"
SDP = {"caller": "v=0\r\nc=IN IP4 127.0.0.1\r\nm=audio 4000 RTP/AVP 0\r\n",
       "callee": "v=0\r\nc=IN IP4 127.0.0.1\r\nm=audio 4002 RTP/AVP 0\r\n"}
B_BINDING = {"contact": "sip:100@127.0.0.1:5072", "socket": "udp:127.0.0.1:5060",
             "src": "udp:127.0.0.1:5072"}
OFFER_SDP = "v=0\r\nc=IN IP4 127.0.0.1\r\nm=audio 30000 RTP/AVP 0\r\n"


def record(caller_role="trunk", **more):
    """A confirmed call as the proxy saves it: C (the client) calls A (extension 201)."""
    return {"tenant": TENANT, "pbx_transfer": "on", "transfer_caller_id": "off",
            "caller_role": caller_role, "caller_ext": "" if caller_role == "trunk" else "300",
            "caller_uri": "sip:+4930123@trunk.test", "caller_tag": "ctag", "caller_name": "",
            "caller_contact": "<sip:c@127.0.0.1:5080>", "caller_src": "udp:127.0.0.1:5080",
            "caller_socket": "udp:127.0.0.1:5060", "caller_cseq": "1", "caller_sdp": SDP["caller"],
            "caller_pai": "", "caller_privacy": "",
            "callee_role": "ext", "callee_ext": "201", "callee_uri": "sip:201@t1.test",
            "callee_tag": "atag", "callee_contact": "<sip:201@127.0.0.1:5071>",
            "callee_target": "sip:201@127.0.0.1:5071",
            "callee_src": "udp:127.0.0.1:5071", "callee_socket": "udp:127.0.0.1:5060",
            "callee_cseq": "0", "callee_sdp": SDP["callee"],
            "rtp_caller": "ctag", "rtp_callee": "atag", **more}


@pytest.fixture
def world(tmp_path):
    store = FakeStore({CALLID: record()}, bindings={(TENANT, "100"): B_BINDING},
                      exts={(TENANT, "100"), (TENANT, "201")})
    ng = RecordingNg(replies={"offer": {"result": "ok", "sdp": OFFER_SDP},
                              "answer": {"result": "ok", "sdp": OFFER_SDP}})
    sip = RecordingSip()
    engine = Engine(store, lambda callid: Media(ng, callid), sip, Sounds(str(tmp_path)))
    return engine, store, ng, sip


def reset(store, ng, sip):
    store.trips.clear()
    ng.clear()
    sip.sent.clear()


def typed_transfer(engine, store, ng, sip):
    """A (callee) types *100: B (leg1) is called."""
    engine.on_code(CALLID, "callee", "*100")
    return store.calls[CALLID]


def test_a_code_commits_the_new_leg_before_its_invite_and_writes_nothing_after(world):
    engine, store, ng, sip = world
    call = typed_transfer(engine, store, ng, sip)
    assert call["x_phase"] == t.RINGING and call["x_b"] == "leg1"
    # Target, socket and From of the leg are in the commit, with the state.
    assert call["leg1_target"] == B_BINDING["contact"]
    assert call["leg1_socket"] == B_BINDING["socket"]
    assert call["leg1_from"].startswith("<sip:201@t1.test>;tag=leg1.")
    # The binding read to accept the code is the plan's too; nothing after the commit.
    assert store.trips == ["call_load", "ext_match", "binding", "transfer_counted", "transfer_save"]
    [(method, leg, invite)] = sip.sent
    assert (method, leg) == ("INVITE", "leg1")
    assert invite["from"] == call["leg1_from"] and invite["pai"] == "<sip:201@t1.test>"
    assert invite["referred_by"] == "<sip:201@t1.test>" and invite["sdp"] == OFFER_SDP
    # C hears the hold media (A muted for it), A the ringback; B's party is offered C's media.
    assert ng.sent("from_tag")[:4] == [("stop media", "ctag"), ("play media", "ctag"),
                                       ("block media", "atag"), ("block DTMF", "atag")]
    assert ("offer", "ctag") in ng.sent("from_tag")
    assert [e["kind"] for e in store.events] == ["started"]
    assert [(leg, kind) for _, leg, kind in store.due] == [("leg1", "t:no_answer")]


def test_a_target_gone_before_the_plan_fails_within_it(world):
    engine, store, ng, sip = world
    store.bindings.clear()
    engine.handle(CALLID, t.Transfer("callee", "100", leg_ext="201"))
    call = store.calls[CALLID]
    assert call["x_phase"] == t.TALKING                   # back to A: no INVITE sent
    assert sip.sent == [] and store.trips.count("transfer_save") == 1
    assert [e["kind"] for e in store.events] == ["started", "failed"]
    assert store.events[1]["reason"] == "not_registered"
    assert [(leg, kind) for _, leg, kind in store.due] == [("callee", "t:relink")]  # no no_answer
    assert "offer" not in ng.names()


def answered_fields():
    return {"leg1_tag": "btag", "leg1_sdp": SDP["callee"], "leg1_src": B_BINDING["src"],
            "leg1_contact": B_BINDING["contact"]}


def test_b_answering_costs_one_read_and_one_commit(world):
    engine, store, ng, sip = world
    typed_transfer(engine, store, ng, sip)
    reset(store, ng, sip)
    engine.handle(CALLID, t.Answered("leg1"), fields=answered_fields())
    assert store.trips == ["call_load", "transfer_save"]
    call = store.calls[CALLID]
    assert call["x_phase"] == t.CONSULT and call["leg1_tag"] == "btag"   # the 2xx's facts, committed
    assert ("offer", "atag", "leg1." + call["leg1_ltag"].split(".")[1]) in ng.sent("from_tag", "to_tag")
    assert sip.sent == []


def test_a_refer_transfer_tells_the_phone_with_a_planned_cseq(world):
    engine, store, ng, sip = world
    engine.handle(CALLID, t.Transfer("callee", "100", leg_ext="201", refer=True))
    [notify] = [s for s in sip.sent if s[0] == "NOTIFY"]
    assert notify[2]["cseq"] == 2 and store.calls[CALLID]["caller_cseq"] == "2"    # 100 Trying
    reset(store, ng, sip)
    engine.handle(CALLID, t.Answered("leg1"), fields=answered_fields())
    assert store.trips == ["call_load", "transfer_save"]                   # target: <= 2
    assert sip.methods() == [("NOTIFY", "callee")]
    assert sip.sent[0][2] == {"cseq": 3, "status": "200 OK", "final": True}
    assert store.calls[CALLID]["caller_cseq"] == "3"                   # committed with the state


def completed(engine, store, ng, sip):
    """An attended transfer completed: C (caller) talks to B (leg1)."""
    typed_transfer(engine, store, ng, sip)
    engine.handle(CALLID, t.Answered("leg1"), fields=answered_fields())
    engine.handle(CALLID, t.Hangup("callee"))
    assert store.calls[CALLID]["x_phase"] == t.TALKING
    reset(store, ng, sip)


def test_a_bye_after_a_transfer_is_one_versioned_delete(world):
    engine, store, ng, sip = world
    completed(engine, store, ng, sip)
    call = store.calls[CALLID]                  # as store.call_end returns it to the route
    message = engine.handle(CALLID, t.Hangup("leg1"), call)
    assert store.trips == ["transfer_save"]     # + the route's call_end: 2 round trips
    assert CALLID not in store.calls
    # To C as A was: after A's last CSeq (0, A never sent a request).
    assert sip.methods() == [("BYE", "caller")] and sip.sent[0][2]["cseq"] == 1
    assert ng.names()[-1] == "delete"
    assert message == [t.Accept("leg1")]


def test_a_lost_compare_and_set_plans_again_on_the_newer_record(world):
    engine, store, ng, sip = world
    completed(engine, store, ng, sip)
    stale = dict(store.calls[CALLID])
    store.calls[CALLID]["x_v"] = str(int(stale["x_v"]) + 1)     # another process came first
    engine.handle(CALLID, t.Hangup("leg1"), stale)
    assert store.trips == ["transfer_save", "call_load", "transfer_save"]
    assert CALLID not in store.calls and sip.methods() == [("BYE", "caller")]    # sent once


OTHER = "y@h"


def other_dialog():
    """A (201) called B (100) in a dialog of its own: the one the REFER's Replaces names."""
    return {"tenant": TENANT, "caller_uri": "sip:201@t1.test", "caller_tag": "a2tag",
            "caller_cseq": "4", "caller_ext": "201", "caller_role": "ext",
            "caller_contact": "<sip:201@127.0.0.1:5071>", "caller_src": "udp:127.0.0.1:5071",
            "caller_socket": "udp:127.0.0.1:5060",
            "callee_uri": "sip:100@t1.test", "callee_tag": "btag", "callee_ext": "100",
            "callee_role": "ext", "callee_contact": "<sip:100@127.0.0.1:5072>",
            "callee_src": "udp:127.0.0.1:5072", "callee_socket": "udp:127.0.0.1:5060",
            "callee_cseq": "7", "callee_sdp": SDP["callee"]}


def test_an_attended_refer_takes_over_the_other_dialog_in_its_commit(world):
    engine, store, ng, sip = world
    store.calls[OTHER] = other_dialog()
    engine.handle(CALLID, t.Transfer("callee", "100", leg_ext="201", refer=True,
                                     join=Takeover(OTHER, "callee")))
    assert store.trips.count("transfer_save") == 1 and store.trips[-1] == "transfer_save"
    assert store.calls[OTHER]["x_join"] == f"{CALLID} leg1 callee"    # in the same commit
    call = store.calls[CALLID]
    assert call["leg1_release"] == "caller" and call["leg1_cseq"] == "5"   # A's CSeq 4, + re-INVITE
    assert [m for m in sip.methods() if m[0] != "NOTIFY"] == [("re-INVITE", "leg1")]
    reset(store, ng, sip)
    # B answers the re-INVITE: C and B are joined, the phone's end of the other dialog goes.
    engine.handle(CALLID, t.Answered("leg1"))
    assert store.trips == ["call_load", "call_load", "transfer_save"]  # + the other record
    assert ("BYE", "caller") in sip.methods()
    [bye] = [s for s in sip.sent if s[0] == "BYE"]
    assert bye[2] == {"cseq": 8, "callid": OTHER}                    # as B, after B's CSeq 7
    assert store.calls[OTHER]["callee_cseq"] == "8"


def test_a_failed_take_over_gives_the_other_dialog_back_in_the_commit(world):
    engine, store, ng, sip = world
    store.calls[OTHER] = other_dialog()
    engine.handle(CALLID, t.Transfer("callee", "100", leg_ext="201", refer=True,
                                     join=Takeover(OTHER, "callee")))
    reset(store, ng, sip)
    engine.handle(CALLID, t.Failed("leg1", "busy"))
    assert store.trips == ["call_load", "transfer_save"]
    assert "x_join" not in store.calls[OTHER]
    assert store.calls[CALLID]["leg1_release"] == ""


def test_a_take_over_of_a_dialog_that_has_ended_fails_within_the_plan(world):
    engine, store, ng, sip = world
    engine.handle(CALLID, t.Transfer("callee", "100", leg_ext="201", refer=True,
                                     join=Takeover(OTHER, "callee")))
    assert store.calls[CALLID]["x_phase"] == t.TALKING
    assert [m for m in sip.methods()] == [("NOTIFY", "callee"), ("NOTIFY", "callee")]
    assert [s[2]["status"] for s in sip.sent] == ["100 Trying", "480 Temporarily Unavailable"]
    assert [s[2]["cseq"] for s in sip.sent] == [2, 3]


def test_a_reoffer_of_a_joined_leg_relinks_it_with_its_partner(world):
    engine, store, ng, sip = world
    completed(engine, store, ng, sip)          # C (caller) talks to B (leg1)
    new_sdp = "v=0\r\nc=IN IP4 127.0.0.1\r\nm=audio 5000 RTP/AVP 0\r\n"
    answer, contact = engine.renegotiate(CALLID, "leg1", new_sdp)
    assert answer == OFFER_SDP and contact == "<sip:vpbx@127.0.0.1:5060;vpbx=mark>"
    assert store.calls[CALLID]["leg1_sdp"] == new_sdp
    offer = [args for name, args in ng.commands if name == "offer"][-1]
    assert (offer["from_tag"], offer["sdp"]) == (store.calls[CALLID]["rtp_leg1"], new_sdp)


def test_a_reoffer_of_a_leg_on_hold_is_refused(world):
    engine, store, ng, sip = world
    typed_transfer(engine, store, ng, sip)     # C on hold while B rings
    assert engine.renegotiate(CALLID, "caller", SDP["caller"]) is None
