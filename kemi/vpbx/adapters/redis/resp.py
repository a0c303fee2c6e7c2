"""A lean Redis client for the proxy's hot path: one send and as few receives as possible
per round trip, RESP2 over one TCP connection per Kamailio process.

redis-py costs several times the CPU of the round trip itself (command objects, response
callbacks, buffered reads); on the proxy's path a call's three round trips are most of the
Python overhead (docs/benchmarks.md). Provisioning and tools keep using redis-py.

When Redis fails (docs/architecture.md, "When Redis fails"): every round trip is bounded by
a short timeout; a connection Redis closed meanwhile (a restart) is replaced once, without
failing the request; and once Redis is found unreachable the client refuses at once
(RespUnavailable, no wait) for DOWN_FOR seconds, then tries again. One log line when Redis
goes, one when it is back.
"""
import logging
import socket
import time
from urllib.parse import unquote, urlparse

log = logging.getLogger("vpbx.redis")
DOWN_FOR = 1.0          # seconds a client refuses at once after finding Redis unreachable


class RespError(Exception):
    """An error reply from Redis, or a connection failure (RespConnectionError)."""


class RespConnectionError(RespError):
    pass


class RespUnavailable(RespConnectionError):
    """Refused without trying: Redis was found unreachable less than DOWN_FOR seconds ago."""


class _Incomplete(Exception):
    pass


class _Stale(Exception):
    """The connection was closed before any reply byte came: Redis did not run the commands."""


def encode(command):
    parts = [b"*%d\r\n" % len(command)]
    for arg in command:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


def parse(buf, pos=0):
    """One reply from buf at pos -> (value, next pos); raises _Incomplete when buf ends first.
    Bulk strings come back as str; error replies as RespError instances (not raised)."""
    end = buf.find(b"\r\n", pos)
    if end < 0:
        raise _Incomplete
    kind, line = buf[pos:pos + 1], buf[pos + 1:end]
    pos = end + 2
    if kind == b"$":
        size = int(line)
        if size < 0:
            return None, pos
        if len(buf) < pos + size + 2:
            raise _Incomplete
        return buf[pos:pos + size].decode("utf-8", "surrogateescape"), pos + size + 2
    if kind == b":":
        return int(line), pos
    if kind == b"+":
        return line.decode(), pos
    if kind == b"*":
        count = int(line)
        if count < 0:
            return None, pos
        items = []
        for _ in range(count):
            item, pos = parse(buf, pos)
            items.append(item)
        return items, pos
    if kind == b"-":
        return RespError(line.decode(errors="replace")), pos
    raise RespConnectionError(f"unexpected reply type {kind!r}")


class Client:
    def __init__(self, host="127.0.0.1", port=6379, db=0, username=None, password=None, timeout=2.0):
        self.address = (host, port)
        self.setup = ([("AUTH", username, password) if username else ("AUTH", password)] if password else [])
        self.setup += [("SELECT", db)] if db else []
        self.timeout = timeout
        self.sock = None
        self.down_until = 0.0       # monotonic time until which Redis counts as unreachable
        self.refused = 0            # requests refused at once since Redis went

    @classmethod
    def from_url(cls, url, timeout=2.0):
        u = urlparse(url)
        if u.scheme != "redis":
            raise ValueError(f"only redis:// URLs are supported, not {url!r}")
        return cls(u.hostname or "127.0.0.1", u.port or 6379, int(u.path.strip("/") or 0),
                   unquote(u.username) if u.username else None,
                   unquote(u.password) if u.password else None, timeout)

    def _connect(self):
        sock = socket.create_connection(self.address, self.timeout)
        sock.settimeout(self.timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = sock
        if self.setup:
            self._roundtrip(self.setup, raise_errors=True)

    def pipeline(self, *commands, raise_errors=True):
        """Send the commands in one write and return their replies in order. The first error
        reply is raised as RespError (after every reply was read, so the connection stays in
        step), or with raise_errors=False returned in its place. RespConnectionError when
        Redis cannot be reached in time; RespUnavailable at once while it counts as down."""
        if self.down_until:
            if time.monotonic() < self.down_until:
                self.refused += 1
                raise RespUnavailable(f"Redis {self._name()}: unreachable (refused at once)")
        try:
            try:
                reused = self.sock is not None
                if not reused:
                    self._connect()
                return self._roundtrip(commands, raise_errors)
            except _Stale:
                if not reused:
                    raise
                # Redis closed this connection while it was idle (a restart): it has not
                # seen these commands. One new connection, the request does not fail.
                self.close()
                self._connect()
                return self._roundtrip(commands, raise_errors)
        except (OSError, _Stale) as exc:
            self.close()
            self._went_down(exc)
            raise RespConnectionError(f"Redis {self._name()}: {exc or 'connection closed'}") from None
        finally:
            if self.down_until and time.monotonic() >= self.down_until and self.sock is not None:
                self._came_back()

    def _name(self):
        return f"{self.address[0]}:{self.address[1]}"

    def _went_down(self, exc):
        if not self.down_until:
            log.error("vpbx: Redis %s unreachable (%s): requests that need it are refused "
                      "for %.0f s at a time until it answers again", self._name(),
                      exc or "connection closed", DOWN_FOR)
        self.down_until = time.monotonic() + DOWN_FOR

    def _came_back(self):
        log.warning("vpbx: Redis %s reachable again (%d requests refused meanwhile)",
                    self._name(), self.refused)
        self.down_until, self.refused = 0.0, 0

    def _roundtrip(self, commands, raise_errors):
        sock = self.sock
        assert sock is not None         # connected by pipeline()
        try:
            sock.sendall(b"".join(encode(c) for c in commands))
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise _Stale(str(exc)) from None
        buf = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError as exc:
                if buf:
                    raise
                raise _Stale(str(exc)) from None
            if not chunk:
                if buf:
                    raise ConnectionResetError("connection closed by Redis")
                raise _Stale("connection closed by Redis")
            buf += chunk
            try:
                replies, pos = [], 0
                for _ in commands:
                    reply, pos = parse(buf, pos)
                    replies.append(reply)
                break
            except _Incomplete:
                continue
        if raise_errors:
            for reply in replies:
                if isinstance(reply, RespError):
                    raise reply
        return replies

    def close(self):
        if self.sock is not None:
            try:
                self.sock.close()
            finally:
                self.sock = None
