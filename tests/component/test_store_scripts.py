"""store.py's Lua scripts on a real redis-server, through the public Store methods, checking
the exact keys and fields each leaves behind (docs/redis-keys.md)."""
import pytest
import redis as redis_py

from vpbx.adapters.redis import resp
from vpbx.adapters.redis.store import CALL_TTL, DUE, EVENTS, Store, call_key, dtmf_key

CID = "c1@host"
OTHER = "c2@host"
NOW = 1_700_000_000.25

RECORD = {
    "tenant": "t1.test", "state": "confirmed", "answered": "1700000000",
    "caller_role": "ext", "callee_role": "ext", "caller_ext": "200", "callee_ext": "201",
    "caller_tag": "ft1", "callee_tag": "tt1", "rtp_caller": "ft1", "rtp_callee": "tt1",
    "caller_src": "udp:127.0.0.1:5061", "callee_src": "udp:127.0.0.1:5062",
    "caller_cseq": "1", "callee_cseq": "0",
}
TRANSFERRING = {"x_v": "3", "x_phase": "ringing", "x_a": "caller", "x_c": "callee", "x_b": "leg1"}
JOINED = {"x_join": f"{OTHER} leg2 callee"}


def save_call(store, callid=CID, **extra):
    record = {**RECORD, **extra}
    store.call_save(callid, record)
    return record


def due_members(r):
    return r.zrange(DUE, 0, -1, withscores=True)


def events(r):
    return [fields for _, fields in r.xrange(EVENTS)]


def assert_ttl(r, key, ttl=CALL_TTL):
    assert ttl - 5 < r.ttl(key) <= ttl


@pytest.fixture
def run_replies(store, monkeypatch):
    """What each script returned, before the Store method turned it into its answer."""
    replies = []
    real = store._run

    def spy(*args):
        replies.append(real(*args))
        return replies[-1]
    monkeypatch.setattr(store, "_run", spy)
    return replies


# ---- dtmf_save (_SAVE_DTMF) -----------------------------------------------------------

CODE_EVENT = {"type": "code", "callid": CID, "tenant": "t1.test", "party": "caller",
              "ext": "200", "code": "*1", "completed_by": "#", "source": "info", "at": "1700000000.250"}


def test_dtmf_first_save_creates_state_at_version_1_with_deadline(store, r, run_replies):
    save_call(store)
    assert store.dtmf_save(CID, "caller", "", {"code": "*1", "last_digit": "1"}, NOW + 5) is True
    assert run_replies == [1]
    key = dtmf_key(CID, "caller")
    assert r.hgetall(key) == {"v": "1", "code": "*1", "last_digit": "1"}
    assert_ttl(r, key)
    assert due_members(r) == [(f"{CID} caller code", NOW + 5)]
    assert not r.exists(dtmf_key(CID, "callee"))
    assert not r.exists(EVENTS)                 # no event given, none appended


def test_dtmf_save_at_current_version_bumps_it_clears_deadline_and_appends_event(store, r):
    save_call(store)
    store.dtmf_save(CID, "caller", "", {"code": "*1", "last_digit": "1"}, NOW + 5)
    assert store.dtmf_save(CID, "caller", "1", {"code": "", "last_digit": "#"}, 0, CODE_EVENT) is True
    assert r.hgetall(dtmf_key(CID, "caller")) == {"v": "2", "code": "", "last_digit": "#"}
    assert due_members(r) == []                 # no deadline: the member is removed
    assert events(r) == [CODE_EVENT]
    # ... and the next version again
    assert store.dtmf_save(CID, "caller", "2", {"code": "*"}, NOW + 9) is True
    assert r.hget(dtmf_key(CID, "caller"), "v") == "3"
    assert due_members(r) == [(f"{CID} caller code", NOW + 9)]
    assert len(events(r)) == 1


def test_dtmf_save_moves_the_deadline_of_its_own_member_only(store, r):
    save_call(store)
    r.zadd(DUE, {f"{CID} callee code": NOW + 1, f"{CID} caller rearm": NOW + 2})
    store.dtmf_save(CID, "caller", "", {"code": "*"}, NOW + 5)
    store.dtmf_save(CID, "caller", "1", {"code": "*2"}, NOW + 7)
    assert due_members(r) == [(f"{CID} callee code", NOW + 1), (f"{CID} caller rearm", NOW + 2),
                              (f"{CID} caller code", NOW + 7)]


@pytest.mark.parametrize("stale", ["", "0", "2"])
def test_dtmf_save_at_a_stale_version_writes_nothing(store, r, run_replies, stale):
    save_call(store)
    store.dtmf_save(CID, "caller", "", {"code": "*1"}, NOW + 5)      # now at v 1
    assert store.dtmf_save(CID, "caller", stale, {"code": "*19"}, NOW + 8, CODE_EVENT) is False
    assert run_replies[-1] == 0
    assert r.hgetall(dtmf_key(CID, "caller")) == {"v": "1", "code": "*1"}
    assert due_members(r) == [(f"{CID} caller code", NOW + 5)]
    assert not r.exists(EVENTS)


def test_dtmf_save_with_a_version_when_there_is_no_state_yet_is_stale(store, r):
    save_call(store)
    assert store.dtmf_save(CID, "caller", "1", {"code": "*"}, NOW + 5) is False
    assert not r.exists(dtmf_key(CID, "caller"))
    assert due_members(r) == []


@pytest.mark.parametrize("version", ["", "1"])
def test_dtmf_save_for_an_ended_call_writes_nothing_but_answers_true(store, r, run_replies, version):
    # The script answers 2 ("the call is gone", checked before the version); dtmf_save's
    # `!= 0` turns that into True, the same answer as a successful save.
    assert store.dtmf_save(CID, "caller", version, {"code": "*1"}, NOW + 5, CODE_EVENT) is True
    assert run_replies == [2]
    assert r.keys("*") == []


def test_dtmf_save_after_call_end_leaves_no_state_behind(store, r):
    save_call(store)
    store.dtmf_save(CID, "caller", "", {"code": "*1"}, NOW + 5)
    assert store.call_end(CID) is None
    store.dtmf_save(CID, "caller", "1", {"code": "*12"}, NOW + 6, CODE_EVENT)
    assert r.keys("*") == []


# ---- call_end (_END_PLAIN_CALL) --------------------------------------------------------

def typing_state(store, r, callid):
    """Both sides' typing state and digit/rearm timers of a call."""
    for side in ("caller", "callee"):
        r.hset(dtmf_key(callid, side), mapping={"v": "1", "code": ""})
        r.zadd(DUE, {f"{callid} {side} code": NOW, f"{callid} {side} rearm": NOW + 1})


def test_call_end_deletes_a_plain_call_with_its_typing_state_and_timers(store, r, run_replies):
    save_call(store)
    typing_state(store, r, CID)
    other = save_call(store, OTHER)
    typing_state(store, r, OTHER)
    assert store.call_end(CID) is None
    assert run_replies == [None]
    assert sorted(r.keys("*")) == sorted([DUE, call_key(OTHER), dtmf_key(OTHER, "caller"),
                                          dtmf_key(OTHER, "callee")])
    assert sorted(due_members(r)) == sorted([(f"{OTHER} {side} {what}", at) for side in ("caller", "callee")
                                             for what, at in (("code", NOW), ("rearm", NOW + 1))])
    assert r.hgetall(call_key(OTHER)) == other


@pytest.mark.parametrize("tags", [("ft1", "tt1"), ("tt1", "ft1")], ids=["caller", "callee"])
def test_call_end_by_either_party_of_the_dialog_deletes_it(store, r, tags):
    save_call(store)
    assert store.call_end(CID, tags) is None
    assert r.keys("*") == []


@pytest.mark.parametrize("tags", [("ft1", "tt2"), ("ft2", "tt1"), ("tt1", "tt1"), ("ft1", "")],
                         ids=["to", "from", "same", "none"])
def test_call_end_with_tags_not_the_dialogs_answers_empty_and_touches_nothing(store, r, tags):
    record = save_call(store)
    typing_state(store, r, CID)
    assert store.call_end(CID, tags) == {}
    assert r.hgetall(call_key(CID)) == record
    assert len(due_members(r)) == 4 and r.exists(dtmf_key(CID, "caller"), dtmf_key(CID, "callee")) == 2


def test_call_end_of_a_call_with_only_timers_removes_the_due_key(store, r):
    save_call(store)
    r.zadd(DUE, {f"{CID} callee rearm": NOW})
    store.call_end(CID)
    assert r.keys("*") == []


@pytest.mark.parametrize("extra", [TRANSFERRING, JOINED], ids=["x_v", "x_join"])
def test_call_end_keeps_a_call_of_the_transfer_engine_and_returns_it(store, r, extra):
    record = save_call(store, **extra)
    typing_state(store, r, CID)
    before = {key: r.type(key) for key in r.keys("*")}
    due_before = due_members(r)
    assert store.call_end(CID) == record
    assert {key: r.type(key) for key in r.keys("*")} == before
    assert r.hgetall(call_key(CID)) == record
    assert due_members(r) == due_before
    assert_ttl(r, call_key(CID))


def test_call_end_of_an_unknown_call_answers_empty_and_touches_nothing(store, r):
    other = save_call(store, OTHER)
    r.zadd(DUE, {f"{CID} caller code": NOW})        # even a stray timer of that Call-ID stays
    assert store.call_end(CID) == {}
    assert r.hgetall(call_key(OTHER)) == other
    assert due_members(r) == [(f"{CID} caller code", NOW)]


# ---- due (_CLAIM_DUE) -----------------------------------------------------------------

def test_due_claims_the_due_members_in_order_and_removes_them(store, r):
    r.zadd(DUE, {"a@h caller code": NOW - 2, "b@h leg1 t:no_answer": NOW, "c@h callee rearm": NOW - 1,
                 "d@h caller code": NOW + 0.5})
    assert store.due(NOW) == [("a@h", "caller", "code"), ("c@h", "callee", "rearm"),
                              ("b@h", "leg1", "t:no_answer")]           # score <= now, oldest first
    assert due_members(r) == [("d@h caller code", NOW + 0.5)]
    assert store.due(NOW) == []
    assert store.due(NOW + 0.5) == [("d@h", "caller", "code")]
    assert not r.exists(DUE)


def test_due_claims_at_most_limit_members(store, r):
    r.zadd(DUE, {f"c{i}@h caller code": NOW - 10 + i for i in range(5)})
    assert store.due(NOW, limit=2) == [("c0@h", "caller", "code"), ("c1@h", "caller", "code")]
    assert [m for m, _ in due_members(r)] == ["c2@h caller code", "c3@h caller code", "c4@h caller code"]
    assert store.due(NOW, limit=2) == [("c2@h", "caller", "code"), ("c3@h", "caller", "code")]
    assert store.due(NOW, limit=2) == [("c4@h", "caller", "code")]
    assert not r.exists(DUE)


def test_due_with_nothing_due_changes_nothing(store, r):
    assert store.due(NOW) == []
    assert not r.exists(DUE)
    store.schedule_rearm(CID, "callee", NOW + 0.3)
    assert store.due(NOW) == []
    assert due_members(r) == [(f"{CID} callee rearm", NOW + 0.3)]
    assert store.due(NOW + 0.3) == [(CID, "callee", "rearm")]


# ---- call_update (_UPDATE_IF_EXISTS) ---------------------------------------------------

def test_call_update_writes_fields_and_renews_the_ttl(store, r):
    record = save_call(store)
    r.expire(call_key(CID), 100)
    assert store.call_update(CID, {"caller_cseq": "2", "caller_sdp": "v=0\r\n"}) == ("", "", "", "")
    assert r.hgetall(call_key(CID)) == {**record, "caller_cseq": "2", "caller_sdp": "v=0\r\n"}
    assert_ttl(r, call_key(CID))


@pytest.mark.parametrize("extra,answer", [
    (TRANSFERRING, ("ringing", "caller", "callee", "")),
    (JOINED, ("", "", "", f"{OTHER} leg2 callee")),
])
def test_call_update_returns_phase_a_c_and_join(store, r, extra, answer):
    record = save_call(store, **extra)
    assert store.call_update(CID, {"leg1_cseq": "7"}) == answer
    assert r.hgetall(call_key(CID)) == {**record, "leg1_cseq": "7"}


def test_call_update_sees_its_own_write(store, r):
    save_call(store, **TRANSFERRING)
    assert store.call_update(CID, {"x_phase": "consult", "x_join": "j"}) == (
        "consult", "caller", "callee", "j")


def test_call_update_never_recreates_an_unknown_or_ended_call(store, r):
    assert store.call_update(CID, {"caller_cseq": "2"}) is None
    assert r.keys("*") == []
    save_call(store)
    store.call_end(CID)
    assert store.call_update(CID, {"caller_cseq": "3"}) is None
    assert r.keys("*") == []


# ---- call_update_from (_UPDATE_IF_SENDER) ----------------------------------------------

CALLER = RECORD["caller_src"]
CALLEE = RECORD["callee_src"]
ELSEWHERE = "udp:192.0.2.9:5060"


@pytest.mark.parametrize("sender", [CALLER, ELSEWHERE])
def test_call_update_from_a_plain_call_writes_whoever_sent_it(store, r, sender):
    record = save_call(store)
    r.expire(call_key(CID), 100)
    assert store.call_update_from(CID, "caller", sender, {"caller_cseq": "2"}) == (("", "", "", ""), True)
    assert r.hgetall(call_key(CID)) == {**record, "caller_cseq": "2"}
    assert_ttl(r, call_key(CID))


@pytest.mark.parametrize("extra,answer", [
    (TRANSFERRING, ("ringing", "caller", "callee", "")),
    (JOINED, ("", "", "", f"{OTHER} leg2 callee")),
])
def test_call_update_from_the_sides_address_writes(store, r, extra, answer):
    record = save_call(store, **extra)
    r.expire(call_key(CID), 100)
    assert store.call_update_from(CID, "callee", CALLEE, {"callee_cseq": "5"}) == (answer, True)
    assert r.hgetall(call_key(CID)) == {**record, "callee_cseq": "5"}
    assert_ttl(r, call_key(CID))


@pytest.mark.parametrize("extra,answer", [
    (TRANSFERRING, ("ringing", "caller", "callee", "")),
    (JOINED, ("", "", "", f"{OTHER} leg2 callee")),
])
@pytest.mark.parametrize("sender", [ELSEWHERE, CALLER])     # CALLER: the other side's address
def test_call_update_from_elsewhere_writes_nothing(store, r, extra, answer, sender):
    record = save_call(store, **extra)
    r.expire(call_key(CID), 100)
    assert store.call_update_from(CID, "callee", sender, {"callee_cseq": "5"}) == (answer, False)
    assert r.hgetall(call_key(CID)) == record
    assert 95 < r.ttl(call_key(CID)) <= 100                 # not renewed either


def test_call_update_from_a_leg_without_an_address_writes_nothing(store, r):
    record = save_call(store, **TRANSFERRING)
    assert store.call_update_from(CID, "leg1", ELSEWHERE, {"leg1_cseq": "2"}) == \
        (("ringing", "caller", "callee", ""), False)
    assert r.hgetall(call_key(CID)) == record
    save_call(store, leg1_src=ELSEWHERE)
    assert store.call_update_from(CID, "leg1", ELSEWHERE, {"leg1_cseq": "2"})[1] is True
    assert r.hget(call_key(CID), "leg1_cseq") == "2"


def test_call_update_from_an_unknown_call_creates_nothing(store, r):
    assert store.call_update_from(CID, "caller", CALLER, {"caller_cseq": "2"}) == (None, True)
    assert r.keys("*") == []


# ---- _run: EVALSHA, and EVAL when Redis does not have the script ---------------------------

class CommandLog:
    """resp.Client wrapper recording the first word of every command sent."""

    def __init__(self, client):
        self.client, self.sent = client, []

    def pipeline(self, *commands, **kw):
        self.sent += [c[0] for c in commands]
        return self.client.pipeline(*commands, **kw)


@pytest.fixture
def logged(store):
    store.fast = CommandLog(store.fast)
    return store.fast


def test_after_script_flush_run_falls_back_to_eval_which_caches_the_script(store, r, logged):
    from vpbx.adapters.redis.store import _UPDATE_IF_EXISTS
    save_call(store)
    store.call_update(CID, {"caller_cseq": "2"})            # loads it (a fresh server has none)
    r.script_flush()
    assert r.script_exists(_UPDATE_IF_EXISTS.sha) == [False]
    logged.sent.clear()
    assert store.call_update(CID, {"caller_cseq": "3"}) == ("", "", "", "")
    assert logged.sent == ["EVALSHA", "EVAL"]
    assert r.hget(call_key(CID), "caller_cseq") == "3"
    assert r.script_exists(_UPDATE_IF_EXISTS.sha) == [True]
    logged.sent.clear()
    store.call_update(CID, {"caller_cseq": "4"})
    assert logged.sent == ["EVALSHA"]


def test_every_script_works_after_script_flush(store, r, logged):
    save_call(store)
    r.zadd(DUE, {"x@h caller code": NOW})
    r.script_flush()
    logged.sent.clear()
    assert store.dtmf_save(CID, "caller", "", {"code": "*"}, NOW + 5) is True
    assert store.due(NOW) == [("x@h", "caller", "code")]
    assert store.call_update(CID, {"caller_cseq": "2"}) == ("", "", "", "")
    assert store.call_update_from(CID, "caller", CALLER, {"caller_cseq": "3"}) == (("", "", "", ""), True)
    assert store.call_end(CID) is None
    assert logged.sent == ["EVALSHA", "EVAL"] * 5
    assert r.keys("*") == []


def test_run_raises_other_errors_and_the_connection_stays_usable(store, r, fast, logged):
    assert store.call_update(OTHER, {"caller_cseq": "2"}) is None     # the script is loaded now
    logged.sent.clear()
    r.set(call_key(CID), "not a hash")
    with pytest.raises(resp.RespError, match="WRONGTYPE"):
        store.call_update(CID, {"caller_cseq": "2"})
    assert logged.sent == ["EVALSHA"]                   # no EVAL retry for that error
    assert fast.pipeline(("PING",)) == ["PONG"]
    assert r.get(call_key(CID)) == "not a hash"


# ---- rtpengine's stored copy of a session (VPBX_RTPE_REDIS_DB) -----------------------------

@pytest.fixture
def sessions(r, redis_server):
    """rtpengine's database (1) of the same server, with a stored session for CID and OTHER."""
    client = redis_py.Redis(*redis_server, db=1, decode_responses=True)
    client.flushdb()
    client.set(CID, "{}")
    client.set(OTHER, "{}")
    yield client
    client.flushdb()
    client.close()


def test_a_call_end_deletes_rtpengines_copy_of_its_session(r, fast, sessions):
    store = Store(fast, sessions_db=1)
    save_call(store)
    assert store.call_end(CID, ("ft1", "tt2")) == {}            # ends nothing: kept
    assert sessions.exists(CID)
    assert store.call_end(CID) is None
    assert sessions.keys("*") == [OTHER] and r.keys("*") == []
    assert fast.pipeline(("DBSIZE",))[0] == 0                   # the connection stays on db 0


def test_a_transfer_step_that_ends_the_call_deletes_rtpengines_copy(r, fast, sessions):
    store = Store(fast, sessions_db=1)
    save_call(store, **TRANSFERRING)
    assert store.transfer_save(CID, TRANSFERRING["x_v"], {}, ends=(("caller", "callee"), ()))
    assert sessions.keys("*") == [OTHER] and r.keys("*") == []


def test_without_rtpengines_database_a_call_end_leaves_db_1_alone(r, fast, sessions):
    store = Store(fast)
    save_call(store)
    assert store.call_end(CID) is None
    assert sorted(sessions.keys("*")) == sorted([CID, OTHER])
