"""The component tier: the adapters' Lua scripts against a private bare redis-server (no
Kamailio, no rtpengine), started once for the run on 127.0.0.1 and flushed before every test."""
import shutil
import subprocess
import time

import pytest
import redis as redis_py

from vpbx.adapters.redis import resp
from vpbx.adapters.redis.lockstore import LockStore
from ports import free_port
from vpbx.adapters.redis.store import Store

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
START_TIMEOUT = 10.0


def _start(workdir, port=None):
    """-> (Popen, port) of a redis-server answering PING; a port taken meanwhile is retried
    (unless `port` is given: a restart on the same port)."""
    for _ in range(1 if port else 5):
        port = port or free_port()
        proc = subprocess.Popen(
            [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--protected-mode", "yes",
             "--dir", str(workdir), "--save", "", "--appendonly", "no", "--daemonize", "no",
             "--logfile", str(workdir / "redis.log")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + START_TIMEOUT
        while proc.poll() is None and time.monotonic() < deadline:
            client = resp.Client("127.0.0.1", port, timeout=0.5)    # a new one: no wait after a refusal
            try:
                if client.pipeline(("PING",)) == ["PONG"]:
                    return proc, port
            except resp.RespError:
                time.sleep(0.02)
            finally:
                client.close()
        _stop(proc)
    log = (workdir / "redis.log").read_text(errors="replace")[-2000:]
    raise RuntimeError(f"redis-server did not answer PING on 127.0.0.1; its log:\n{log}")


def _stop(proc):
    """Stop the redis-server this fixture started, by its PID (proc), and reap it."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    """(host, port) of the private redis-server."""
    proc, port = _start(tmp_path_factory.mktemp("redis"))
    try:
        yield "127.0.0.1", port
    finally:
        _stop(proc)


@pytest.fixture
def r(redis_server):
    """redis-py (as the CLI uses it) on an empty server: FLUSHALL before the test."""
    host, port = redis_server
    client = redis_py.Redis(host=host, port=port, decode_responses=True, socket_timeout=2)
    client.flushall()
    yield client
    client.close()


@pytest.fixture
def fast(r, redis_server):
    """The proxy's lean client (resp.Client), a new connection per test."""
    client = resp.Client(*redis_server)
    yield client
    client.close()


@pytest.fixture
def store(r, fast):
    return Store(fast)


@pytest.fixture
def locks(fast):
    return LockStore(fast)
