"""An extension calls another extension of its tenant; audio flows both ways through rtpengine."""
import pytest

from calls import callee, caller, read_port, register, talk
from conftest import PASSWORD, TENANT


@pytest.mark.parametrize("hangup", ["caller", "callee"])
def test_call_with_audio_both_ways_and_dialog_record(pbx, hangup):
    b = callee(pbx, "201", hangup=hangup)
    register(pbx, "201", b.port).passed()
    a = caller(pbx, "200", "201", password=PASSWORD, hangup=hangup)
    read_port(pbx.workdir, a.name)          # answered

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
    assert record["callee_src"] == f"udp:127.0.0.1:{b.port}"
    assert 0 < pbx.redis.ttl(keys[0]) <= 6 * 3600

    talk(pbx, a, b)
