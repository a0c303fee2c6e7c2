"""SDP details the transfer engine needs (pure): whether a party is held, and the re-offer that
takes it off hold within its session."""
import re

_HELD = re.compile(r"^a=(recvonly|inactive)\r?$", re.M)
_ORIGIN = re.compile(r"^o=(\S+) (\S+) (\d+) ([^\r\n]*)", re.M)


def held(sdp: str | None) -> bool:
    """Whether the party that sent this SDP does not send audio (it was put on hold)."""
    return bool(_HELD.search(sdp or ""))


def resumed(sdp: str) -> str:
    """The same SDP as sent by a party that sends and receives again."""
    return _HELD.sub(lambda m: m.group(0).replace(m.group(1), "sendrecv"), sdp)


def reoffer(sdp: str, previous: str | None) -> str:
    """`sdp` as the next offer of the session `previous` belongs to (the last SDP the party
    got from this side): RFC 3264 wants the same o= line with its version increased; the
    address stays `sdp`'s."""
    old, new = _ORIGIN.search(previous or ""), _ORIGIN.search(sdp)
    if not old or not new:
        return sdp
    user, session, version, _ = old.groups()
    line = f"o={user} {session} {int(version) + 1} {new.group(4)}"
    return sdp[:new.start()] + line + sdp[new.end():]
