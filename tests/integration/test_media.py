"""The media re-wiring of a transfer on the real rtpengine (no SIP): who hears whom in each
phase, with RTP from three peers C, A, B that each send their own SSRC."""
import threading
import time

import pytest

from vpbx.adapters.rtpengine.media import Media
from vpbx.adapters.rtpengine import sounds
from vpbx.adapters.rtpengine.sounds import Sounds

from harness import RtpPeer
from softphone import tone_power

NOTES = sorted({hz for chord in sounds._CHORDS for hz in chord})

CALLID = "media-test-call"
FLAGS = dict(flags=["trust-address", "port-latching"], replace=["origin", "session-connection"])


def sdp(port, session):
    return (f"v=0\r\no=- {session} 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
            f"m=audio {port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n"
            "a=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n")


def media_port(body):
    return int(body.split("m=audio ")[1].split()[0])


class Call:
    """C calls A through rtpengine; B can be added as a leg the proxy calls."""

    def __init__(self, ng, workdir):
        self.ng = ng
        self.media = Media(ng, CALLID)
        self.sounds = Sounds(workdir / "sounds")
        self.peers = {name: RtpPeer(ssrc) for name, ssrc in (("C", 0xC), ("A", 0xA), ("B", 0xB))}
        self.sdp = {name: sdp(peer.port, n + 1) for n, (name, peer) in enumerate(self.peers.items())}
        self.dest = {}
        reply = ng.command("offer", call_id=CALLID, from_tag="c", sdp=self.sdp["C"], **FLAGS)
        self.dest["A"] = media_port(reply["sdp"])
        reply = ng.command("answer", call_id=CALLID, from_tag="c", to_tag="a", sdp=self.sdp["A"],
                           **FLAGS)
        self.dest["C"] = media_port(reply["sdp"])

    def party(self, name):
        return name.lower(), self.sdp[name]

    def call_b(self):
        self.dest["B"] = media_port(self.media.offer_new("b", "c", self.sdp["C"]))

    def hears(self, seconds=1.0):
        """Who each peer hears while all send: {peer: set of senders}; "media" is rtpengine's
        player. Backlog from before is discarded."""
        time.sleep(0.1)
        for peer in self.peers.values():
            peer.flush()
        threads = [threading.Thread(target=self.peers[n].exchange, args=(self.dest[n], int(seconds / 0.02)))
                   for n in self.dest]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        names = {0xC: "C", 0xA: "A", 0xB: "B"}
        return {n: {names.get(ssrc, "media") for ssrc, count in self.peers[n].received.items()
                    if count >= 10} for n in self.dest}

    def played(self, name):
        """What rtpengine played to the peer in the last hears(): 'ringback', 'music' or ''."""
        peer = self.peers[name]
        samples = [x for ssrc in peer.audio if ssrc not in (0xA, 0xB, 0xC)
                   for x in peer.samples(ssrc)]
        ring, music = tone_power(samples, 425), max(tone_power(samples, hz) for hz in NOTES)
        return "ringback" if ring > 10 * music else "music" if music > 10 * ring else ""

    def ringing(self, hold):
        """A typed *B: B is called, C hears hold media, A ringback (the transfer engine's
        Call, Hold, Ringback effects)."""
        self.call_b()
        self.media.play("c", hold)
        self.media.mute("a")
        self.media.play("a", self.sounds.ringback())

    def close(self):
        self.media.end()
        for peer in self.peers.values():
            peer.close()


@pytest.fixture
def call(pbx):
    c = Call(pbx.cfg.ng(), pbx.workdir)
    yield c
    c.close()


ALL = ("c", "a", "b")


def test_before_a_transfer_c_and_a_talk(call):
    assert call.hears() == {"C": {"A"}, "A": {"C"}}


@pytest.mark.parametrize("hold", ["music", "ringback"])
def test_while_b_rings_c_hears_hold_media_and_a_ringback(call, hold):
    call.ringing(getattr(call.sounds, hold)())
    assert call.hears() == {"C": {"media"}, "A": {"media"}, "B": set()}
    assert (call.played("C"), call.played("A")) == (hold, "ringback")


def test_attended_transfer(call):
    call.ringing(call.sounds.music())
    port_b = call.dest["B"]
    call.media.link(call.party("A"), call.party("B"), ALL)             # B answers: consultation
    assert call.hears() == {"C": {"media"}, "A": {"B"}, "B": {"A"}}
    call.media.drop("a")                                                # A hangs up
    call.media.link(call.party("C"), call.party("B"), ALL)
    assert call.hears() == {"C": {"B"}, "A": set(), "B": {"C"}}
    assert call.dest["B"] == port_b


def test_blind_transfer(call):
    call.ringing(call.sounds.ringback())
    call.media.drop("a")                                                # A hangs up: blind
    assert call.hears() == {"C": {"media"}, "A": set(), "B": set()}
    call.media.link(call.party("C"), call.party("B"), ALL)             # B answers
    assert call.hears() == {"C": {"B"}, "A": set(), "B": {"C"}}


def test_return_while_b_rings(call):
    call.ringing(call.sounds.music())
    call.media.drop("b")
    call.media.link(call.party("C"), call.party("A"), ALL)
    assert call.hears() == {"C": {"A"}, "A": {"C"}, "B": set()}


def test_return_during_consultation(call):
    call.ringing(call.sounds.music())
    call.media.link(call.party("A"), call.party("B"), ALL)
    call.media.drop("b")
    call.media.link(call.party("C"), call.party("A"), ALL)
    assert call.hears() == {"C": {"A"}, "A": {"C"}, "B": set()}


def test_a_failure_tone_then_a_is_back_with_c(call):
    call.ringing(call.sounds.music())
    call.media.drop("b")
    call.media.play("a", call.sounds.failure(), repeat=1)
    assert call.hears() == {"C": {"media"}, "A": {"media"}, "B": set()}
    call.media.link(call.party("C"), call.party("A"), ALL)
    assert call.hears() == {"C": {"A"}, "A": {"C"}, "B": set()}
