"""In-dialog requests are loose-routed: a hold re-INVITE goes through rtpengine and updates
the dialog record."""
from calls import register
from conftest import TENANT
from harness import RtpPeer, Sipp, wait_for


def test_hold_reinvite_updates_sdp_and_cseq_in_the_dialog_record(pbx):
    a_media, b_media = RtpPeer(1), RtpPeer(2)
    b = Sipp(pbx.workdir, "callee_hold", pbx.address, variables={"user": "201", "rtp_port": b_media.port})
    register(pbx, "201", b.port).passed()
    a = Sipp(pbx.workdir, "caller_hold", pbx.address, duration_ms=1500,
             variables={"from_user": "202", "from_domain": TENANT, "to_user": "201",
                        "to_domain": TENANT, "rtp_port": a_media.port})

    def held():
        keys = pbx.store.call_keys()
        record = pbx.redis.hgetall(keys[0]) if keys else {}
        return record if record.get("caller_cseq") == "2" else None
    record = wait_for(held, timeout=5, what="the re-INVITE in the dialog record")
    assert "a=sendonly" in record["caller_sdp"] and "a=recvonly" in record["callee_sdp"]
    assert f"m=audio {a_media.port} " in record["caller_sdp"]
    a.passed()
    b.passed()
    reinvite = [m for m in b.received("INVITE ") if "CSeq: 2 INVITE" in m]
    assert len(reinvite) == 1 and "a=sendonly" in reinvite[0]
    assert f"m=audio {a_media.port} " not in reinvite[0], \
        "the re-INVITE's media must stay anchored in rtpengine"
