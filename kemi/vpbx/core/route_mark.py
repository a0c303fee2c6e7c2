"""The proxy's mark in the Record-Route of every call it routes: a keyed hash of the Call-ID
and the caller's tag. An in-dialog request whose Route carries a valid mark belongs to a call
this proxy (or a node sharing its secret) set up, even when Redis has no record of it — Redis
unreachable, a record that could not be written on the 2xx, or lost with a Redis restart —
so the request can be relayed as a plain proxy would. Without the secret no one can make a
dialog up to have the proxy relay requests for it (docs/security.md)."""
import hashlib
import hmac

PARAM = "vpbx"          # the Record-Route URI parameter: ;vpbx=<mark>
LENGTH = 20             # hex digits: 80 bits


class RouteMark:
    def __init__(self, secret: str) -> None:
        self._key = hashlib.sha256(b"vpbx record-route mark\n" + secret.encode()).digest()

    def of(self, callid: str, caller_tag: str) -> str:
        text = f"{callid}\n{caller_tag}".encode()
        return hmac.new(self._key, text, hashlib.sha256).hexdigest()[:LENGTH]

    def of_leg(self, leg_callid: str) -> str:
        """The mark of a dialog the proxy originated (a leg it called): in its Contact, so
        that the leg's requests, sent to that Contact, carry it in their Request-URI."""
        return self.of(leg_callid, "")

    def marks_leg(self, ruri: str, leg_callid: str) -> bool:
        """Whether a request's Request-URI (our Contact in that leg's dialog) has its mark."""
        return hmac.compare_digest(uri_param(ruri, PARAM), self.of_leg(leg_callid))


def uri_param(uri: str, name: str) -> str:
    """The value of the URI parameter `name` ("" if absent) of a Request-URI."""
    for param in uri.partition("?")[0].split(";")[1:]:
        key, _, value = param.partition("=")
        if key.strip().lower() == name:
            return value.strip()
    return ""
