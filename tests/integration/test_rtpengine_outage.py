"""A node whose rtpengine is gone (SIGKILL), with the real daemons: a new call is refused
with 503, never connected with its media unanchored; once `up` has started rtpengine again,
calls are anchored again."""
import os
import signal
import time

from calls import callee, caller, probe, read_port, register, talk
from conftest import PASSWORD

from vpbx.tooling import stack


def test_no_call_is_connected_unanchored(pbx):
    b = callee(pbx, "201")
    register(pbx, "201", b.port).passed()
    os.killpg(stack.running(pbx.cfg)["rtpengine"], signal.SIGKILL)
    try:
        start = time.monotonic()
        answer = probe(pbx, "202", "201")
        took = time.monotonic() - start
        assert answer.startswith("503 Service Unavailable - media relay"), answer
        assert b.received("INVITE ") == []                  # B never rang
        print(f"503 after {took:.2f} s")
    finally:
        stack.up(pbx.cfg, say=lambda _: None)               # brings back the missing daemon
    # Anchored again: a call through the new rtpengine, audio both ways.
    a = caller(pbx, "200", "201", password=PASSWORD)
    read_port(pbx.workdir, a.name)
    talk(pbx, a, b)
