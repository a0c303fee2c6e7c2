"""Redis round trips per transfer transition, counted on the real store over a real Redis.

The routes and the engine run as in Kamailio, with Kamailio (tests/fakes.FakeSip) and
rtpengine (tests/fakes.RecordingNg) replaced by recorders: what is counted is every Redis
round trip their code makes for one message, the commit's included. `make bench` prints the
table (bench/run.py); `transitions.py HOST:PORT` prints it against any Redis (its database 15 is flushed).
"""
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "kemi"), str(ROOT / "tests"), str(ROOT / "tests" / "unit")]

from fakes import FakeSip, RecordingNg          # noqa: E402
from test_engine import CALLID, OFFER_SDP, TENANT, record   # noqa: E402

from vpbx.adapters.kamailio.backlog import Backlog   # noqa: E402
from vpbx.adapters.kamailio.dialogs import Dialogs   # noqa: E402
from vpbx.adapters.kamailio.legs import Legs         # noqa: E402
from vpbx.adapters.kamailio.senders import Senders   # noqa: E402
from vpbx.adapters.kamailio.uac import Uac           # noqa: E402
from vpbx.adapters.redis import resp                 # noqa: E402
from vpbx.adapters.redis.store import Store, call_key    # noqa: E402
from vpbx.adapters.rtpengine.media import Media      # noqa: E402
from vpbx.adapters.rtpengine.sounds import Sounds    # noqa: E402
from vpbx.core import transfer as t                  # noqa: E402
from vpbx.core.route_mark import RouteMark           # noqa: E402
from vpbx.engine.transfers import Engine             # noqa: E402

B_SRC = "udp:127.0.0.1:5072"
TARGET = 2          # issue 11: round trips per transition
SCRATCH_DB = 15     # the Redis database the scenarios use (and flush)


class CountingClient(resp.Client):
    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self.trips = self.commands = 0

    def pipeline(self, *commands, raise_errors=True):
        self.trips += 1
        self.commands += len(commands)
        return super().pipeline(*commands, raise_errors=raise_errors)


class World:
    """One call's routes over the store, with a fresh FakeSip per message."""

    def __init__(self, host, port, db, sounds):
        self.fast = CountingClient(host, port, db)
        self.store = Store(self.fast)
        self.ng = RecordingNg(replies={"offer": {"result": "ok", "sdp": OFFER_SDP},
                                       "answer": {"result": "ok", "sdp": OFFER_SDP}})
        self.sounds = sounds

    def routes(self, sip):
        mark = RouteMark("b" * 32)
        uac = Uac(sip, "/nonexistent", mark)
        engine = Engine(self.store, lambda callid: Media(self.ng, callid), uac, Sounds(self.sounds))
        senders = Senders(self.store, sip)
        backlog = Backlog(sip, self.ng)
        legs = Legs(self.store, engine, sip, uac, senders, None, mark, backlog)
        return engine, legs, Dialogs(self.store, sip, senders, None, legs, None, mark, self.ng, backlog)

    def counted(self, action):
        before = self.fast.trips, self.fast.commands
        action()
        return self.fast.trips - before[0], self.fast.commands - before[1]

    def fresh_call(self):
        self.fast.pipeline(("FLUSHDB",), ("SADD", "vpbx:tenants", TENANT),
                           ("HSET", f"vpbx:exts:{TENANT}", "100", "", "201", ""),
                           ("ZADD", f"vpbx:extidx:{TENANT}", 0, "100", 0, "201"),
                           ("HSET", f"vpbx:loc:{TENANT}:100", "contact", "sip:100@127.0.0.1:5072",
                            "socket", "udp:127.0.0.1:5060", "src", B_SRC))
        self.store.call_save(CALLID, record())

    def b_answers(self):
        sip = FakeSip(pv={"$ci": f"vpbx-leg1-{CALLID}", "$rs": 200, "$tt": "btag",
                          "$ct": "<sip:100@127.0.0.1:5072>", "$rb": record()["callee_sdp"]}, src=B_SRC)
        return self.counted(lambda: self.routes(sip)[1].on_reply())

    def bye(self, side, src):
        sip = FakeSip("BYE", pv={"$ci": CALLID}, side=side, src=src)
        return self.counted(lambda: self.routes(sip)[2].bye(CALLID))

    def leg_bye(self, leg, src):
        sip = FakeSip("BYE", pv={"$ci": f"vpbx-{leg}-{CALLID}"}, src=src)
        return self.counted(lambda: self.routes(sip)[1].route_leg_request(CALLID, leg))

    def event(self, event):
        engine = self.routes(FakeSip())[0]
        return self.counted(lambda: engine.handle(CALLID, event))


def measure(host, port, db):
    """-> [(transition, round trips, commands)], in Redis database `db` (flushed)."""
    with tempfile.TemporaryDirectory() as sounds:
        w = World(host, port, db, sounds)
        rows = []
        # A phone's REFER carried out here (blind): B's 200, then the client's BYE.
        w.fresh_call()
        w.event(t.Transfer("callee", "100", leg_ext="201", refer=True))
        rows.append(("REFER transfer: B's 200", *w.b_answers()))
        rows.append(("after it: the client's BYE", *w.bye("caller", record()["caller_src"])))
        # A code transfer, attended: B's 200, A hangs up (completed), B hangs up.
        w.fresh_call()
        rows.append(("*100: the code's transfer step", *w.event(
            t.Transfer("callee", "100", leg_ext="201"))))
        rows.append(("attended: B's 200", *w.b_answers()))
        rows.append(("attended: A's BYE (completes)", *w.bye("callee", record()["callee_src"])))
        rows.append(("after it: B's BYE", *w.leg_bye("leg1", B_SRC)))
        left = w.fast.pipeline(("EXISTS", call_key(CALLID)))[0]
        if left:
            raise RuntimeError("the call record is left behind")
        return rows


def report(host, port, db=SCRATCH_DB):
    measure(host, port, db)     # first: Redis learns the Lua scripts (EVAL after NOSCRIPT)
    rows = measure(host, port, db)
    print()
    print(f"{'transfer transition (routes + engine, real Redis)':50} {'round trips':>11} {'commands':>9}")
    for name, trips, commands in rows:
        print(f"{name:50} {trips:11d} {commands:9d}")
    print(f"goal: <= {TARGET} round trips for B's 200 of a REFER transfer and a BYE after a transfer"
          " (before plan/commit/act: 4 and 4)")
    return rows


if __name__ == "__main__":
    host, _, port = sys.argv[1].rpartition(":")
    report(host or "127.0.0.1", int(port))
