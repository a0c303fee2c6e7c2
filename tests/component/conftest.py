"""The component tier: the adapters' Lua scripts against a private bare redis-server (no
Kamailio, no rtpengine), started once for the run on 127.0.0.1 and flushed before every test."""

import pytest
import redis as redis_py

from vpbx.adapters.redis import resp
from vpbx.adapters.redis.lockstore import LockStore
from redis_server import start as _start, stop as _stop
from vpbx.adapters.redis.store import Store

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
