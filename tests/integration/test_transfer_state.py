"""The transfer state's compare-and-set on the real Redis: events of one call applied at the
same moment by several processes are applied one after the other, none lost."""
import threading

from vpbx.adapters.redis import resp
from vpbx.core import transfer as t
from vpbx.core.transfer import state_of
from vpbx.adapters.redis.store import Store

CALLID = "cas-test-call"


def test_concurrent_transitions_are_serialised(pbx):
    store = pbx.calls
    store.call_save(CALLID, {"tenant": "t1.test"})
    workers, rounds = 4, 25

    def apply_events(n):
        # A connection of its own, as each Kamailio process has.
        store = Store(resp.Client.from_url(pbx.cfg.redis_url))
        for _ in range(rounds):
            while True:                              # as engine.handle does: read, step, CAS
                call = store.call_load(CALLID)
                state = state_of(call)
                new = t.State(**{**state.__dict__, "legs": state.legs + 1})
                if store.transfer_save(CALLID, call.get("x_v", ""),
                                       {f"x_{k}": v for k, v in t.to_fields(new).items()},
                                       due=[(1e12, f"w{n}", "t:test")]):
                    break
    threads = [threading.Thread(target=apply_events, args=(n,)) for n in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    call = store.call_load(CALLID)
    assert state_of(call).legs == workers * rounds          # no update lost
    assert call["x_v"] == str(workers * rounds)
    assert store.transfer_save(CALLID, call["x_v"], {}, ends=([f"w{n}" for n in range(workers)], []))
    assert store.call_load(CALLID) == {}
    pbx.redis.zrem("vpbx:due", *[f"{CALLID} w{n} t:test" for n in range(workers)])


def test_a_stale_version_writes_nothing(pbx):
    store = pbx.calls
    store.call_save(CALLID, {"tenant": "t1.test"})
    assert store.transfer_save(CALLID, "", {"x_phase": "ringing"}, events=[{"type": "transfer"}])
    assert not store.transfer_save(CALLID, "", {"x_phase": "ended"})    # lost the race
    assert store.call_load(CALLID)["x_phase"] == "ringing"
    assert not store.transfer_save(CALLID, "", {}, ends=(["caller", "callee"], []))   # stale
    assert store.transfer_save(CALLID, "1", {}, ends=(["caller", "callee"], []))     # versioned delete
    assert not store.transfer_save(CALLID, "1", {"x_phase": "ended"})   # the call is gone
    assert store.call_load(CALLID) == {}
