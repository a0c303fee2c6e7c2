"""Routes and the UAC with fakes (tests/fakes.py: FakeSip for Kamailio, FakeStore for Redis):
what each answers, relays or sends for a given message and call record."""
import json

import pytest
from fakes import FakeSip, FakeStore, RecordingNg
from test_engine import CALLID, TENANT, record

from vpbx.core import transfer as t
from vpbx.core.route_mark import RouteMark, uri_param
from vpbx.adapters.kamailio.backlog import TABLE as BACKLOG, Backlog
from vpbx.adapters.kamailio.dialogs import Dialogs
from vpbx.adapters.kamailio.legs import Legs
from vpbx.adapters.kamailio.proxy import Proxy
from vpbx.adapters.kamailio.refers import Refers
from vpbx.adapters.kamailio.senders import Senders
from vpbx.adapters.kamailio.uac import Uac
from vpbx.adapters.redis.resp import RespConnectionError
from vpbx.adapters.rtpengine.media import Media

TRUNK = "127.0.0.1:5090"
MARK = RouteMark("m" * 32)


class RecordingEngine:
    def __init__(self):
        self.events = []

    def handle(self, callid, event, call=None, fields=None, facts=None):
        self.events.append((callid, event, fields))
        return []

    def transfer_event(self, call, state, side, ext):
        return t.Transfer(side, ext, leg_ext=call.get(f"{side}_ext", "")), None

    def transfer_allowed(self, call):
        return True


def trunk_call(trunk_side):
    """A client on a trunk calls extension 201 (trunk_side "caller"), or 201 calls out
    through the trunk ("callee")."""
    if trunk_side == "caller":
        return record("trunk", caller_src=f"udp:{TRUNK}")
    ext_side = {k.replace("callee", "caller"): v for k, v in record("ext").items()
                if k.startswith("callee_")}
    return {**record("ext"), **ext_side, "caller_ext": "201", "callee_role": "trunk",
            "callee_ext": "", "callee_target": f"sip:+4930123@{TRUNK}",
            "callee_src": f"udp:{TRUNK}"}


def refer(trunk_side, mode):
    """The extension (the side that is no trunk) REFERs the trunk's party to 100."""
    ext_side = "callee" if trunk_side == "caller" else "caller"
    call = trunk_call(trunk_side)
    store = FakeStore({CALLID: call}, exts={(TENANT, "100")})
    store.refer_modes = {TRUNK: mode}
    sip = FakeSip("REFER", side=ext_side, src=call[f"{ext_side}_src"], myself={"sip:t1.test"},
                  pv={"$ci": CALLID, "$hdr(Refer-To)": "<sip:100@t1.test>"})
    engine = RecordingEngine()
    routes = Refers(store, engine, sip, Uac(sip, "/nonexistent", MARK), Senders(store, sip))
    return routes.checked(CALLID), store, sip, engine


@pytest.mark.parametrize("trunk_side", ["caller", "callee"], ids=["trunk_caller", "trunk_callee"])
def test_a_refer_to_a_pass_trunk_is_relayed_whichever_side_the_trunk_is(trunk_side):
    relay, store, sip, engine = refer(trunk_side, "pass")
    assert store.trunk_refer_asked == TRUNK
    assert relay and engine.events == []
    assert ("replace_header", "Refer-To", "<sip:100@t1.test>") in sip.did


@pytest.mark.parametrize("trunk_side", ["caller", "callee"], ids=["trunk_caller", "trunk_callee"])
def test_a_refer_to_a_terminate_trunk_is_carried_out_here(trunk_side):
    relay, store, sip, engine = refer(trunk_side, "terminate")
    assert store.trunk_refer_asked == TRUNK
    assert not relay and sip.answers() == [(202, "Accepted")]
    [(callid, event, _)] = engine.events
    assert isinstance(event, t.Transfer) and (event.ext, event.refer) == ("100", True)


def test_a_refer_from_elsewhere_than_the_party_is_refused():
    call = trunk_call("caller")
    store = FakeStore({CALLID: call})
    sip = FakeSip("REFER", side="callee", src="udp:127.0.0.7:5071", pv={"$ci": CALLID})
    routes = Refers(store, RecordingEngine(), sip, Uac(sip, "/x", MARK), Senders(store, sip))
    assert not routes.checked(CALLID)
    assert sip.answers() == [(403, "Forbidden - not sent by that party of the call")]


def test_the_uac_speaks_to_an_original_side_as_its_peer():
    sip = FakeSip()
    Uac(sip, "/x", MARK).bye({**record(), "callid": CALLID}, "caller", 7)
    [(method, ruri, nexthop, sock, headers, body)] = sip.sent
    assert (method, ruri, nexthop, sock) == ("BYE", "sip:c@127.0.0.1:5080",
                                             "sip:127.0.0.1:5080;transport=udp", "udp:127.0.0.1:5060")
    assert "From: <sip:201@t1.test>;tag=atag\r\n" in headers            # as A
    assert "To: <sip:+4930123@trunk.test>;tag=ctag\r\n" in headers
    assert f"Call-ID: {CALLID}\r\nCSeq: 7 BYE\r\n" in headers and body == ""


def dialogs(store, sip):
    senders = Senders(store, sip)
    engine = RecordingEngine()
    ng = RecordingNg()
    backlog = Backlog(sip, ng)
    legs = Legs(store, engine, sip, None, senders, None, MARK, backlog)
    return Dialogs(store, sip, senders, None, legs, None, MARK, ng, backlog), engine


def test_a_bye_naming_no_call_gets_481_and_is_not_relayed():
    store, sip = FakeStore(), FakeSip("BYE", pv={"$ci": "nosuch@h"})
    assert dialogs(store, sip)[0].bye("nosuch@h")
    assert sip.answers() == [(481, "Call/Transaction Does Not Exist")] and not sip.relayed()


@pytest.mark.parametrize("tags", [("ctag", "atag"), ("atag", "ctag")], ids=["caller", "callee"])
def test_an_ordinary_calls_bye_ends_its_media_and_is_relayed(tags):
    store = FakeStore({CALLID: record()})
    sip = FakeSip("BYE", pv={"$ci": CALLID, "$ft": tags[0], "$tt": tags[1]}, src=record()["caller_src"])
    assert not dialogs(store, sip)[0].bye(CALLID)
    assert ("rtpengine_delete",) in sip.did and CALLID not in store.calls


def test_a_bye_with_the_call_id_but_not_the_dialogs_tags_gets_481_and_ends_nothing():
    """The proxy ends the record and the media on a BYE: one of another dialog (a wrong
    tag, from a fuzzer or a confused phone) must not end this one's state behind its back."""
    store = FakeStore({CALLID: record()})
    sip = FakeSip("BYE", pv={"$ci": CALLID, "$ft": "ctag", "$tt": "other"}, src="udp:127.0.0.7:5080")
    assert dialogs(store, sip)[0].bye(CALLID)
    assert sip.answers() == [(481, "Call/Transaction Does Not Exist")] and not sip.relayed()
    assert ("rtpengine_delete",) not in sip.did and store.calls[CALLID] == record()


def our_call_without_record(method, *, side="caller", mark=None):
    """A request in a call this proxy routed (the mark in its Route) that Redis has no
    record of: its 2xx came while Redis was unreachable, or a Redis restart lost it."""
    tags = ("ctag", "atag") if side == "caller" else ("atag", "ctag")
    sip = FakeSip(method, pv={"$ci": CALLID, "$ft": tags[0], "$tt": tags[1]}, side=side)
    sip.route_params = {"vpbx": mark or MARK.of(CALLID, "ctag")}
    return FakeStore(), sip


@pytest.mark.parametrize("side", ["caller", "callee"])
def test_our_calls_bye_without_a_record_ends_its_media_and_is_relayed(side):
    store, sip = our_call_without_record("BYE", side=side)
    assert not dialogs(store, sip)[0].bye(CALLID)
    assert ("rtpengine_delete",) in sip.did and sip.answers() == []


@pytest.mark.parametrize("mark", ["0" * 20, MARK.of(CALLID, "atag"), MARK.of("other@h", "ctag")],
                         ids=["made_up", "callee_tag", "other_call"])
def test_a_bye_without_record_and_without_our_mark_gets_481(mark):
    store, sip = our_call_without_record("BYE", mark=mark)
    assert dialogs(store, sip)[0].bye(CALLID)
    assert sip.answers() == [(481, "Call/Transaction Does Not Exist")]
    assert ("rtpengine_delete",) not in sip.did


def test_a_bye_with_our_mark_but_a_wrong_tag_of_a_recorded_call_gets_481():
    """The mark proves the caller's tag only: the callee's tag is checked by the record."""
    store = FakeStore({CALLID: record()})
    sip = FakeSip("BYE", pv={"$ci": CALLID, "$ft": "ctag", "$tt": "other"})
    sip.route_params = {"vpbx": MARK.of(CALLID, "ctag")}
    assert dialogs(store, sip)[0].bye(CALLID)
    assert sip.answers() == [(481, "Call/Transaction Does Not Exist")] and CALLID in store.calls


def test_our_calls_reinvite_without_a_record_is_relayed_through_rtpengine():
    store, sip = our_call_without_record("INVITE")
    sip.sdp = True
    assert not dialogs(store, sip)[0].other_request(CALLID)
    assert any(d[0] == "rtpengine_manage" for d in sip.did) and sip.answers() == []


def test_a_reinvite_without_record_and_without_our_mark_gets_481():
    store, sip = our_call_without_record("INVITE", mark="0" * 20)
    sip.sdp = True
    assert dialogs(store, sip)[0].other_request(CALLID)
    assert sip.answers() == [(481, "Call/Transaction Does Not Exist")]


@pytest.mark.parametrize("mark", [MARK.of(CALLID, "ctag"), "0" * 20], ids=["ours", "made_up"])
def test_while_redis_is_unreachable_only_our_calls_requests_are_relayed(mark):
    store, sip = our_call_without_record("BYE", mark=mark)
    routes = dialogs(store, sip)[0]
    routes.without_state(CALLID)
    if mark == MARK.of(CALLID, "ctag"):
        # The whole rtpengine call (a call-id-only delete): a transfer's leg and music too.
        assert sip.relayed() and routes.ng.commands == [("delete", {"call_id": CALLID})]
        assert sip.shared_items(BACKLOG) == [(f"bye:{CALLID}", "caller")]  # the rest: later
    else:
        assert sip.answers() == [(481, "Call/Transaction Does Not Exist")] and not sip.relayed()
        assert sip.shared_items(BACKLOG) == []


def test_once_redis_is_back_the_calls_whose_bye_was_relayed_are_ended():
    sip, engine = FakeSip(), RecordingEngine()
    backlog = Backlog(sip, RecordingNg())
    backlog.bye_relayed(CALLID, "callee")
    backlog.run(engine)
    assert [(c, e) for c, e, _ in engine.events] == [(CALLID, t.RelayedBye("callee"))]
    assert sip.shared_items(BACKLOG) == []


def test_the_backlog_waits_while_redis_is_still_unreachable():
    class Unreachable(RecordingEngine):
        def handle(self, callid, event, call=None, fields=None, facts=None):
            raise RespConnectionError("down")
    sip = FakeSip()
    backlog = Backlog(sip, RecordingNg())
    backlog.bye_relayed(CALLID, "callee")
    backlog.run(Unreachable())
    assert sip.shared_items(BACKLOG) == [(f"bye:{CALLID}", "callee")]


def test_a_delete_rtpengine_did_not_get_is_sent_again_once_it_answers():
    sip, ng = FakeSip(), RecordingNg()
    backlog = Backlog(sip, ng)
    ng.unreachable = True
    Media(ng, CALLID, backlog.media_lost).end()         # lost: kept
    backlog.run(RecordingEngine())
    assert sip.shared_items(BACKLOG) == [(f"delete:{CALLID}", "")]
    ng.unreachable = False
    backlog.run(RecordingEngine())
    assert ng.commands == [("delete", {"call_id": CALLID})] * 3 and sip.shared_items(BACKLOG) == []


def test_a_delete_of_a_call_rtpengine_does_not_know_is_not_tried_again():
    sip, ng = FakeSip(), RecordingNg(errors={"delete": "Unknown call-ID"})
    backlog = Backlog(sip, ng)
    sip.shared_set(BACKLOG, f"delete:{CALLID}", "")
    backlog.run(RecordingEngine())
    assert sip.shared_items(BACKLOG) == []


def test_a_bye_in_a_transferred_call_goes_to_the_engine_with_its_record():
    store = FakeStore({CALLID: record(x_v="3", x_phase="talking", x_a="leg1", x_c="caller")})
    sip = FakeSip("BYE", pv={"$ci": CALLID}, src=record()["caller_src"])
    routes, engine = dialogs(store, sip)
    assert routes.bye(CALLID)
    [(callid, event, _)] = engine.events
    assert event == t.Hangup("caller") and store.trips == ["call_end"]      # the record reused


def test_a_bye_in_a_transferred_call_from_a_stranger_is_refused():
    store = FakeStore({CALLID: record(x_v="3", x_phase="talking", x_a="leg1", x_c="caller")})
    sip = FakeSip("BYE", pv={"$ci": CALLID}, src="udp:127.0.0.7:5080")
    routes, engine = dialogs(store, sip)
    assert routes.bye(CALLID) and engine.events == []
    assert sip.answers() == [(403, "Forbidden - not sent by that party of the call")]


def test_a_legs_2xx_goes_to_the_engine_with_its_facts():
    store = FakeStore()
    sip = FakeSip(pv={"$ci": f"vpbx-leg1-{CALLID}", "$rs": 200, "$tt": "btag",
                      "$ct": "<sip:100@127.0.0.1:5072>", "$rb": "v=0\r\n"}, src="udp:127.0.0.1:5072")
    engine = RecordingEngine()
    Legs(store, engine, sip, None, Senders(store, sip), None, MARK, Backlog(sip, RecordingNg())).on_reply()
    [(callid, event, fields)] = engine.events
    assert (callid, event) == (CALLID, t.Answered("leg1"))
    assert fields == {"leg1_tag": "btag", "leg1_sdp": "v=0\r\n", "leg1_src": "udp:127.0.0.1:5072",
                      "leg1_contact": "sip:100@127.0.0.1:5072"}
    assert store.trips == []            # no write of its own: the engine commits them


def bare_proxy(sip):
    return Proxy(sip, None, None, None, ("127.0.0.1", 0), registrar=None, invites=None,
                 dialogs=None, legs=None, digits=None, orphans=None, backlog=None)


def test_a_request_redis_cannot_serve_gets_503_in_a_transaction():
    sip = FakeSip("INVITE")
    bare_proxy(sip).refuse_unavailable()
    assert sip.did == [("newtran",), ("header", "Retry-After: 2\r\n"),
                       ("reply", 503, "Service Unavailable - state store")]


def test_a_retransmission_tm_has_answered_costs_nothing_more():
    sip = FakeSip("REGISTER")
    sip.newtran_rc = 0
    bare_proxy(sip).refuse_unavailable()
    assert sip.did == [("newtran",)]


class UnreachableStore(FakeStore):
    """Redis down: every read or write of a call raises."""
    def __getattribute__(self, name):
        if name.startswith("call_") or name in ("leg_sender", "transfer_save"):
            raise RespConnectionError("Redis 127.0.0.1:6379: unreachable (refused at once)")
        return super().__getattribute__(name)


class UnreachableEngine(RecordingEngine):
    def handle(self, callid, event, call=None, fields=None, facts=None):
        raise RespConnectionError("down")


def leg_bye(ruri):
    store, sip = UnreachableStore(), FakeSip("BYE", pv={"$ci": f"vpbx-leg1-{CALLID}", "$ru": ruri})
    backlog = Backlog(sip, RecordingNg())
    return Legs(store, RecordingEngine(), sip, None, Senders(store, sip), None, MARK, backlog), sip


def test_a_legs_bye_while_redis_is_unreachable_is_answered_and_its_hangup_kept_for_later():
    """B hangs up while Redis is down: its BYE carries the leg's mark in the R-URI (our
    Contact), so it is ours: 200 now, the engine's Hangup once Redis is back."""
    mark = MARK.of_leg(f"vpbx-leg1-{CALLID}")
    legs, sip = leg_bye(f"sip:vpbx@127.0.0.1:5060;vpbx={mark}")
    legs.route_leg_request(CALLID, "leg1")
    assert sip.answers() == [(200, "OK")] and not sip.relayed()
    assert sip.shared_items(BACKLOG) == [(f"hangup:leg1:{CALLID}", "")]


@pytest.mark.parametrize("ruri", ["sip:vpbx@127.0.0.1:5060", "sip:vpbx@127.0.0.1:5060;vpbx=00",
                                  f"sip:vpbx@127.0.0.1:5060;vpbx={MARK.of(CALLID, '')}"],
                         ids=["unmarked", "forged", "another_dialogs"])
def test_a_legs_bye_without_its_mark_while_redis_is_unreachable_is_not_taken(ruri):
    """Not known to be ours: left to the 503 of an unreachable Redis, nothing kept."""
    legs, sip = leg_bye(ruri)
    with pytest.raises(RespConnectionError):
        legs.route_leg_request(CALLID, "leg1")
    assert sip.answers() == [] and sip.shared_items(BACKLOG) == []


def test_a_legs_2xx_or_failure_while_redis_is_unreachable_is_kept_for_the_engine():
    sip = FakeSip(pv={"$ci": f"vpbx-leg2-{CALLID}", "$rs": 200, "$tt": "btag", "$T_reply_code": 486,
                      "$ct": "<sip:100@127.0.0.1:5072>", "$rb": "v=0\r\n"}, src="udp:127.0.0.1:5072")
    store = FakeStore()
    legs = Legs(store, UnreachableEngine(), sip, None, Senders(store, sip), None, MARK,
                Backlog(sip, RecordingNg()))
    legs.on_reply()
    legs.on_failure()
    kept = dict(sip.shared_items(BACKLOG))
    assert json.loads(kept.pop(f"answered:leg2:{CALLID}")) == {
        "leg2_tag": "btag", "leg2_sdp": "v=0\r\n", "leg2_src": "udp:127.0.0.1:5072",
        "leg2_contact": "sip:100@127.0.0.1:5072"}
    assert kept == {f"failed:leg2:{CALLID}": "busy"}


def test_once_redis_is_back_a_legs_answer_then_its_bye_go_before_the_calls_end():
    """The engine gets them in the order that leaves nothing: B's answer (then B is hung up
    by the relayed BYE's end of the call, not cancelled after tm completed its INVITE)."""
    sip, engine = FakeSip(), RecordingEngine()
    backlog = Backlog(sip, RecordingNg())
    backlog.bye_relayed(CALLID, "caller")
    backlog.leg_said(CALLID, "leg1", "hangup")
    backlog.leg_said(CALLID, "leg1", "answered", json.dumps({"leg1_tag": "b"}))
    backlog.leg_said("other@h", "leg2", "failed", "no_answer")
    backlog.run(engine)
    assert engine.events == [(CALLID, t.Answered("leg1"), {"leg1_tag": "b"}),
                             ("other@h", t.Failed("leg2", "no_answer"), None),
                             (CALLID, t.Hangup("leg1"), None),
                             (CALLID, t.RelayedBye("caller"), None)]
    assert sip.shared_items(BACKLOG) == []


def test_the_proxys_contact_in_a_legs_dialog_carries_the_legs_mark():
    uac = Uac(FakeSip(), "/x", MARK)
    contact = uac.proxy_contact("udp:127.0.0.1:5060", f"vpbx-leg1-{CALLID}")
    assert contact == f"<sip:vpbx@127.0.0.1:5060;vpbx={MARK.of_leg(f'vpbx-leg1-{CALLID}')}>"
    assert uri_param(contact.strip("<>"), "vpbx") == MARK.of_leg(f"vpbx-leg1-{CALLID}")
