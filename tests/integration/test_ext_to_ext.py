"""An extension calls another extension of its tenant; audio flows both ways through rtpengine."""
import pytest

from calls import callee, caller, register
from conftest import PASSWORD, TENANT
from harness import exchange_media, read_port


@pytest.mark.parametrize("hangup", ["caller", "callee"])
def test_call_with_audio_both_ways_and_dialog_record(pbx, hangup):
    b = callee(pbx, "201", hangup=hangup)
    register(pbx, "201", b.port).passed()
    a = caller(pbx, "200", "201", password=PASSWORD, hangup=hangup)
    a_dest, b_dest = read_port(pbx.workdir, "caller"), read_port(pbx.workdir, "callee")
    assert {a_dest, b_dest}.isdisjoint({a.media.port, b.media.port}), "media must be anchored in rtpengine"

    keys = pbx.store.call_keys()
    assert len(keys) == 1
    record = pbx.redis.hgetall(keys[0])
    assert record["tenant"] == TENANT
    assert (record["caller_role"], record["caller_ext"]) == ("ext", "200")
    assert (record["callee_role"], record["callee_ext"]) == ("ext", "201")
    assert f"m=audio {a.media.port} " in record["caller_sdp"]
    assert f"m=audio {b.media.port} " in record["callee_sdp"]
    assert record["caller_tag"] and record["callee_tag"] and record["callee_contact"]
    assert record["caller_src"] == f"udp:127.0.0.1:{a.port}"
    assert 0 < pbx.redis.ttl(keys[0]) <= 6 * 3600

    exchange_media((a.media, a_dest), (b.media, b_dest))
    a.passed()
    b.passed()
    assert a.media.received[b.media.ssrc] >= 20, a.media.received
    assert b.media.received[a.media.ssrc] >= 20, b.media.received
    assert set(a.media.received) == {b.media.ssrc} and set(b.media.received) == {a.media.ssrc}
