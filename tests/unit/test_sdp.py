from vpbx.core import sdp

HELD = ("v=0\r\no=- 5 7 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n"
        "m=audio 4000 RTP/AVP 0\r\na=recvonly\r\n")
LINKED = ("v=0\r\no=- 3 4 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
          "m=audio 30000 RTP/AVP 0\r\na=sendrecv\r\n")
A_HOLD_OFFER = ("v=0\r\no=phone 77 12 IN IP4 192.168.1.5\r\ns=-\r\nc=IN IP4 192.168.1.5\r\nt=0 0\r\n"
                "m=audio 5000 RTP/AVP 0\r\na=sendonly\r\n")


def test_a_recvonly_or_inactive_party_is_held():
    assert sdp.held(HELD)
    assert sdp.held(HELD.replace("recvonly", "inactive"))
    assert not sdp.held(LINKED) and not sdp.held(A_HOLD_OFFER) and not sdp.held("")


def test_resumed_sends_and_receives_again():
    assert "a=sendrecv\r\n" in sdp.resumed(HELD) and not sdp.held(sdp.resumed(HELD))
    assert sdp.resumed(LINKED) == LINKED


def test_a_reoffer_continues_the_session_the_party_knows():
    offer = sdp.reoffer(LINKED, A_HOLD_OFFER)
    assert "o=phone 77 13 IN IP4 127.0.0.1\r\n" in offer          # A's session, next version
    assert offer.replace("o=phone 77 13", "o=- 3 4") == LINKED        # nothing else changes
    assert sdp.reoffer(LINKED, "") == LINKED


def test_a_silenced_answer_sends_nothing_anywhere():
    answer = ("v=0\r\no=b 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
              "m=audio 7078 RTP/AVP 0 101\r\nc=IN IP4 127.0.0.2\r\na=rtpmap:0 PCMU/8000\r\n"
              "a=sendrecv\r\nm=video 9000 RTP/AVP 96\r\nc=IN IP6 ::1\r\n")
    silenced = sdp.silenced(answer)
    assert silenced == ("v=0\r\no=b 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\n"
                        "m=audio 7078 RTP/AVP 0 101\r\nc=IN IP4 0.0.0.0\r\na=rtpmap:0 PCMU/8000\r\n"
                        "a=inactive\r\nm=video 9000 RTP/AVP 96\r\nc=IN IP6 ::\r\na=inactive\r\n")
    assert sdp.held(silenced)
