"""rtpengine ng protocol client over UDP: `cookie SP bencode-dict`."""
import os
import socket
from typing import Any

from vpbx.core import bencode


class NgError(RuntimeError):
    pass


class NgUnreachable(NgError):
    """No answer from rtpengine (refused, or timed out): it did nothing, or we cannot know."""


class NgClient:
    def __init__(self, host: str = "127.0.0.1", port: int = 2223, timeout: float = 1.0) -> None:
        self.address = (host, port)
        self.timeout = timeout

    def command(self, name: str, **args: Any) -> dict[str, Any]:
        """Send one command and return the reply dict; raises NgError on error or timeout."""
        args = {k.replace("_", "-"): v for k, v in args.items()}
        args["command"] = name
        cookie = os.urandom(6).hex()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(self.timeout)
            sock.connect(self.address)
            sock.send(cookie.encode() + b" " + bencode.encode(args))
            try:
                while True:
                    data = sock.recv(65535)
                    head, _, body = data.partition(b" ")
                    if head.decode() == cookie:
                        break
            except OSError as exc:
                raise NgUnreachable(f"rtpengine {self.address[0]}:{self.address[1]} {name}: {exc}") from None
        reply = bencode.decode(body)
        if reply.get("result") == "error":
            raise NgError(f"rtpengine {name}: {reply.get('error-reason')}")
        return reply

    def ping(self) -> bool:
        return self.command("ping").get("result") == "pong"

    def calls(self) -> list[str]:
        """Call-IDs rtpengine currently holds."""
        return self.command("list", limit=1000).get("calls", [])
