"""The lean client when Redis fails (resp.Client): a restart costs no failed request, an
unreachable or hanging Redis is found within the timeout and then refused at once, and it is
used again by itself once back — one log line each way."""
import logging
import os
import signal
import time

import pytest
from redis_server import start as _start, stop as _stop

from vpbx.adapters.redis import resp

TIMEOUT = 0.05


@pytest.fixture
def server(tmp_path):
    proc, port = _start(tmp_path)
    state = {"proc": proc, "port": port, "dir": tmp_path}
    yield state
    if state["proc"].poll() is None:
        os.kill(state["proc"].pid, signal.SIGCONT)
    _stop(state["proc"])


def restart(server):
    _stop(server["proc"])
    server["proc"], _ = _start(server["dir"], server["port"])


def timed(call):
    start = time.monotonic()
    try:
        return call(), time.monotonic() - start
    except resp.RespError as exc:
        return exc, time.monotonic() - start


def test_a_restarted_redis_costs_no_failed_request(server):
    client = resp.Client("127.0.0.1", server["port"], timeout=TIMEOUT)
    assert client.pipeline(("SET", "k", "1")) == ["OK"]
    restart(server)                         # the client's connection is dead now
    assert client.pipeline(("GET", "k"), ("PING",)) == [None, "PONG"]     # no error, a new connection
    assert client.down_until == 0


def test_an_unreachable_redis_is_refused_at_once_then_used_again(server, caplog):
    caplog.set_level(logging.INFO, logger="vpbx.redis")
    client = resp.Client("127.0.0.1", server["port"], timeout=TIMEOUT)
    client.pipeline(("PING",))
    _stop(server["proc"])
    first, took = timed(lambda: client.pipeline(("PING",)))
    assert isinstance(first, resp.RespConnectionError) and took < 0.5
    for _ in range(20):                      # refused without trying: no wait, no connect
        refused, took = timed(lambda: client.pipeline(("PING",)))
        assert isinstance(refused, resp.RespUnavailable) and took < 0.005
    went = [r.getMessage() for r in caplog.records if r.name == "vpbx.redis"]
    assert len(went) == 1 and "unreachable" in went[0]      # one line, not one per request
    server["proc"], _ = _start(server["dir"], server["port"])
    caplog.clear()                           # (what the restart's own polling logged)
    time.sleep(resp.DOWN_FOR + 0.05)
    assert client.pipeline(("PING",)) == ["PONG"]
    assert client.down_until == 0
    back = [r.getMessage() for r in caplog.records if r.name == "vpbx.redis"]
    assert len(back) == 1 and "reachable again (20 requests refused" in back[0]


def test_a_hanging_redis_costs_one_timeout_then_nothing(server):
    client = resp.Client("127.0.0.1", server["port"], timeout=TIMEOUT)
    client.pipeline(("PING",))
    os.kill(server["proc"].pid, signal.SIGSTOP)
    try:
        first, took = timed(lambda: client.pipeline(("PING",)))
        assert isinstance(first, resp.RespConnectionError) and TIMEOUT <= took < TIMEOUT + 0.1
        second, took = timed(lambda: client.pipeline(("PING",)))
        assert isinstance(second, resp.RespUnavailable) and took < 0.005
    finally:
        os.kill(server["proc"].pid, signal.SIGCONT)
    time.sleep(resp.DOWN_FOR + 0.05)
    assert client.pipeline(("PING",)) == ["PONG"]       # the half-read connection was dropped


def test_a_fresh_connection_that_fails_is_not_retried(server):
    client = resp.Client("127.0.0.1", server["port"], timeout=TIMEOUT)
    _stop(server["proc"])
    refused, _ = timed(lambda: client.pipeline(("PING",)))
    assert isinstance(refused, resp.RespConnectionError) and client.down_until > 0
