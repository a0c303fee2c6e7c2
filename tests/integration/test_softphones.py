"""Two real softphones (baresip) register with digest auth and call each other; each hears
the other's tone through rtpengine."""
import time

import pytest

from conftest import PASSWORD, TENANT
from softphone import Baresip


@pytest.fixture
def phones(pbx):
    made = []

    def phone(*args, **kwargs):
        made.append(Baresip(pbx.workdir, *args, **kwargs))
        return made[-1]
    yield phone
    for p in made:
        p.stop()


def test_two_softphones_talk(pbx, phones):
    a = phones("200", TENANT, pbx.address, tone_hz=440, password=PASSWORD, rtp_base=41000)
    b = phones("201", TENANT, pbx.address, tone_hz=880, rtp_base=41200)
    a.registered()
    b.registered()
    a.command("dial", f"sip:201@{TENANT}")
    a.wait_output("Call established")
    b.wait_output("Call established")
    assert len(pbx.store.call_keys()) == 1 and len(pbx.cfg.ng().calls()) == 1
    time.sleep(3)
    a.command("hangup")
    a.wait_output("terminated")
    b.wait_output("terminated")
    heard_by_a, heard_by_b = a.received_tones(), b.received_tones()
    assert heard_by_a(880) > 1000 * heard_by_a(440), "A must hear B's 880 Hz tone"
    assert heard_by_b(440) > 1000 * heard_by_b(880), "B must hear A's 440 Hz tone"
