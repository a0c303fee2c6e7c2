"""Free loopback ports for the daemons and SIPp parties the tests and the bench start."""
import socket


def free_port(count: int = 1) -> int:
    """A loopback port free now for both UDP and TCP (Kamailio and SIPp open both), with the
    next count-1 ports free too (SIPp's -mp takes four: audio and video RTP/RTCP)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            base = udp.getsockname()[1]
        if base + count > 65536:
            continue
        if all(bindable(port) for port in range(base, base + count)):
            return base


def bindable(port: int) -> bool:
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        with socket.socket(socket.AF_INET, kind) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True
