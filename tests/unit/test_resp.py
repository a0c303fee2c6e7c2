import pytest

from vpbx.adapters.redis import resp


def test_encode_command():
    assert resp.encode(("HSET", "k", "f", 12, b"\x00")) == \
        b"*5\r\n$4\r\nHSET\r\n$1\r\nk\r\n$1\r\nf\r\n$2\r\n12\r\n$1\r\n\x00\r\n"


@pytest.mark.parametrize("wire,value", [
    (b"+OK\r\n", "OK"),
    (b":42\r\n", 42),
    (b"$5\r\nhe\r\no\r\n", "he\r\no"),          # bulk strings may hold CRLF
    (b"$-1\r\n", None),
    (b"*-1\r\n", None),
    (b"*0\r\n", []),
    (b"*3\r\n$1\r\na\r\n$-1\r\n:1\r\n", ["a", None, 1]),
    (b"*2\r\n*1\r\n:1\r\n$2\r\nxy\r\n", [[1], "xy"]),
])
def test_parse_replies(wire, value):
    assert resp.parse(wire) == (value, len(wire))


def test_error_reply_is_returned_not_raised():
    reply, _ = resp.parse(b"-NOSCRIPT No matching script\r\n")
    assert isinstance(reply, resp.RespError) and str(reply).startswith("NOSCRIPT")


@pytest.mark.parametrize("wire", [b"", b"+OK", b"$5\r\nab", b"*2\r\n:1\r\n", b"$3\r\nabc"])
def test_incomplete_replies_ask_for_more(wire):
    with pytest.raises(resp._Incomplete):
        resp.parse(wire)


def test_unknown_reply_type_is_a_connection_error():
    with pytest.raises(resp.RespConnectionError):
        resp.parse(b"?x\r\n")


def test_url():
    c = resp.Client.from_url("redis://:s3cret@10.0.0.1:6380/2")
    assert c.address == ("10.0.0.1", 6380) and c.setup == [("AUTH", "s3cret"), ("SELECT", 2)]
    with pytest.raises(ValueError):
        resp.Client.from_url("rediss://x")


def test_unreachable_server_is_a_resp_connection_error():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]          # bound, not listening: connection refused
        with pytest.raises(resp.RespConnectionError):
            resp.Client("127.0.0.1", port, timeout=0.5).pipeline(("PING",))
