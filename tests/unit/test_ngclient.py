"""ngclient.NgClient against a fake rtpengine on a loopback UDP socket: what Media's keyword
arguments (as RecordingNg records them) become on the wire, and the error replies."""
import socket
import threading

import pytest

from fakes import RecordingNg
from vpbx.core import bencode
from vpbx.adapters.rtpengine.media import Media
from vpbx.adapters.rtpengine.ngclient import NgClient, NgError


class FakeRtpengine:
    """Answers each datagram with `reply` (bencoded, the request's cookie first), after
    sending `stale` answers under another cookie; keeps the decoded requests."""

    def __init__(self, reply, stale=0):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(2)
        self.reply, self.stale, self.requests = reply, stale, []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def port(self):
        return self.sock.getsockname()[1]

    def _serve(self):
        try:
            data, peer = self.sock.recvfrom(65535)
        except OSError:
            return
        cookie, _, body = data.partition(b" ")
        self.requests.append(bencode.decode(body))
        for _ in range(self.stale):
            self.sock.sendto(b"000000000000 " + bencode.encode({"result": "ok"}), peer)
        self.sock.sendto(cookie + b" " + bencode.encode(self.reply), peer)

    def close(self):
        self.thread.join(timeout=3)
        self.sock.close()


@pytest.fixture
def rtpengine(request):
    servers = []

    def start(reply, stale=0):
        servers.append(FakeRtpengine(reply, stale))
        return servers[-1]
    yield start
    for server in servers:
        server.close()


def test_keyword_names_get_dashes_and_the_command_is_added(rtpengine):
    fake = rtpengine({"result": "ok"})
    Media(NgClient("127.0.0.1", fake.port), "c1@host").guard("ft1")
    assert fake.requests == [{
        "command": "block DTMF", "call-id": "c1@host", "from-tag": "ft1", "trigger": "*",
        "DTMF-security-trigger": "drop", "DTMF-security-trigger-end": "off",
        "trigger-end-time": 120000}]


def test_the_wire_form_is_what_recording_ng_records_with_dashes(rtpengine):
    ng = RecordingNg()
    Media(ng, "c1@host").guard("ft1")
    ((name, args),) = ng.commands
    fake = rtpengine({"result": "ok"})
    NgClient("127.0.0.1", fake.port).command(name, **args)
    assert fake.requests == [{"command": name, **{k.replace("_", "-"): v for k, v in args.items()}}]


def test_a_reply_under_another_cookie_is_skipped(rtpengine):
    fake = rtpengine({"result": "ok", "sdp": "v=0"}, stale=2)
    assert NgClient("127.0.0.1", fake.port).command("offer", call_id="c") == {"result": "ok", "sdp": "v=0"}


def test_an_error_reply_is_raised_with_its_reason(rtpengine):
    fake = rtpengine({"result": "error", "error-reason": "Unknown call-id"})
    with pytest.raises(NgError, match="^rtpengine delete: Unknown call-id$"):
        NgClient("127.0.0.1", fake.port).command("delete", call_id="c")


def test_no_answer_is_an_error():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        with pytest.raises(NgError, match="ping"):
            NgClient("127.0.0.1", silent.getsockname()[1], timeout=0.1).ping()
