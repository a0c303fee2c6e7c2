"""Redis round trips per transfer transition on the real store (bench/transitions.py, which
`make bench` prints): B's 200 and a BYE after a transfer cost at most 2."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import transitions  # noqa: E402


def test_each_transition_reads_once_and_commits_once(r, redis_server):
    transitions.measure(*redis_server, 0)           # Redis learns the scripts
    rows = {name: trips for name, trips, _ in transitions.measure(*redis_server, 0)}
    assert rows["REFER transfer: B's 200"] <= transitions.TARGET
    assert rows["after it: the client's BYE"] <= transitions.TARGET
    assert rows["attended: B's 200"] <= transitions.TARGET
    assert rows["attended: A's BYE (completes)"] <= transitions.TARGET
    assert rows["after it: B's BYE"] <= transitions.TARGET
