"""`make soak` in small (bench/soak.py, the same code): a few hundred calls of every kind
(basic, blind, attended, *1 return) through the real stack, with one Redis restart (SIGTERM)
and one rtpengine restart (SIGKILL) in the middle. Every call is accounted for: completed,
refused 503 during an outage, or in progress at a restart; none failed otherwise, nothing
left behind, Kamailio and rtpengine memory growth under the bound."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import soak  # noqa: E402  (bench/soak.py)

PLAN = soak.Plan(calls=300, rate=10, transfers=30)


def test_small_soak(pbx):
    fig = soak.soak(pbx.cfg, pbx.workdir, PLAN)
    soak.report(fig)
    counts = PLAN.counts()
    for kind in soak.KINDS:
        c = fig.by_kind[kind.name]
        assert c["placed"] == counts[kind.name], (kind.name, c)
        if kind.final:      # the transfers happened, seen on the PBX event stream
            assert c[f"transfers {kind.final}"] >= c["completed"] > 0, (kind.name, c)
    assert [o.back > o.killed > 0 for o in fig.outages] == [True, True]
    assert fig.failed == 0, fig.problems
    assert soak.leaked(fig) == {}
    assert soak.passed(fig)
    # Records of calls whose BYE came while Redis was down stay until their TTL (accounted).
    for key in fig.left_accounted:
        pbx.redis.delete(key)
