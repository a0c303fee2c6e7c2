"""SDP details the proxy needs (pure): whether a party is held, the re-offer that takes it
off hold within its session, and an answer that sends no media anywhere."""
import re

_HELD = re.compile(r"^a=(recvonly|inactive)\r?$", re.M)
_DIRECTION = re.compile(r"^a=(sendrecv|sendonly|recvonly|inactive)$")
_CONNECTION = re.compile(r"^c=IN (IP4|IP6) \S+")
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


def silenced(sdp: str) -> str:
    """The same SDP with every stream inactive and no address to send to (c= 0.0.0.0 or ::):
    an answer rtpengine could not take reaches the caller so, never pointing its media at
    the callee directly."""
    eol = "\r\n" if "\r\n" in sdp else "\n"
    out: list[str] = []
    in_media = False
    for line in sdp.splitlines():
        if line.startswith("m=") and in_media:
            out.append("a=inactive")
        in_media = in_media or line.startswith("m=")
        if _DIRECTION.match(line):
            continue
        out.append(_CONNECTION.sub(lambda m: f"c=IN {m.group(1)} "
                                   + ("0.0.0.0" if m.group(1) == "IP4" else "::"), line))
    if in_media:
        out.append("a=inactive")
    return eol.join(out) + eol
