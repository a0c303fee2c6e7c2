"""Transfers typed on real softphones (baresip, RFC 4733 digits): C, A and B each send their
own tone; after the transfer C must hear B's tone and B C's."""
import time

import pytest

from conftest import TENANT
from softphone import Baresip

C_HZ, A_HZ, B_HZ = 440, 660, 880


@pytest.fixture
def phones(pbx_transfer):
    made = []

    def phone(user, tone_hz, rtp_base, **kwargs):
        made.append(Baresip(pbx_transfer.workdir, user, TENANT, pbx_transfer.address, tone_hz=tone_hz,
                            rtp_base=rtp_base, **kwargs))
        made[-1].registered()
        return made[-1]
    yield phone
    for p in made:
        p.stop()


def a_calls_c(phones):
    c = phones("202", C_HZ, 41000)
    a = phones("201", A_HZ, 41200)
    a.command("dial", f"sip:202@{TENANT}")
    a.wait_output("Call established")
    c.wait_output("Call established")
    time.sleep(0.5)
    return a, c


def assert_c_and_b_talk(c, b):
    heard_by_c, heard_by_b = c.received_tones(), b.received_tones()
    assert heard_by_c(B_HZ) > 100 * max(heard_by_c(A_HZ), heard_by_c(C_HZ)), "C must hear B"
    assert heard_by_b(C_HZ) > 100 * max(heard_by_b(A_HZ), heard_by_b(B_HZ)), "B must hear C"


def test_blind_transfer_on_a_softphone(pbx_transfer, phones):
    b = phones("100", B_HZ, 41400, answermode="manual")
    a, c = a_calls_c(phones)
    a.command("sndcode", "*100")
    b.wait_output("Incoming call")
    a.command("hangup")                         # before B answers: blind
    a.wait_output("terminated")
    time.sleep(0.5)
    b.command("accept")
    b.wait_output("Call established")
    time.sleep(3)
    b.command("hangup")
    b.wait_output("terminated")
    c.wait_output("terminated")                 # the proxy ended C's call
    assert_c_and_b_talk(c, b)


def test_attended_transfer_on_a_softphone(pbx_transfer, phones):
    b = phones("100", B_HZ, 41400)
    a, c = a_calls_c(phones)
    a.command("sndcode", "*100")
    b.wait_output("Call established")           # B answers at once: consultation
    time.sleep(1.5)
    a.command("hangup")
    a.wait_output("terminated")
    time.sleep(3)
    c.command("hangup")                         # C ends: the proxy ends B's call
    c.wait_output("terminated")
    b.wait_output("terminated")
    assert_c_and_b_talk(c, b)
