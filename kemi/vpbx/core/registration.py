"""REGISTER rules (pure): Contact parsing and binding lifetimes.

One binding per extension: a REGISTER carries at most one Contact (or `*` to remove all).
"""
from collections.abc import Iterable
from dataclasses import dataclass

MIN_EXPIRES = 60
MAX_EXPIRES = 3600
DEFAULT_EXPIRES = 3600


class RegisterError(ValueError):
    """A REGISTER to refuse: `code` and `reason` for the reply, `headers` to add."""

    def __init__(self, code: int, reason: str, headers: str = "") -> None:
        super().__init__(reason)
        self.code, self.reason, self.headers = code, reason, headers


@dataclass(frozen=True)
class Contact:
    uri: str            # "*" for the wildcard
    params: dict[str, str]  # header parameters (after the URI), names in lower case


def split_header_list(value: str) -> list[str]:
    """Split a comma-separated header value, ignoring commas inside quotes and <...>."""
    parts: list[str] = []
    current: list[str] = []
    depth, quoted = 0, False
    for ch in value:
        if ch == '"' and (not current or current[-1] != "\\"):
            quoted = not quoted
        elif not quoted and ch == "<":
            depth += 1
        elif not quoted and ch == ">":
            depth -= 1
        elif not quoted and depth == 0 and ch == ",":
            parts.append("".join(current).strip())
            current = []
            continue
        current.append(ch)
    if "".join(current).strip():
        parts.append("".join(current).strip())
    return parts


def parse_contact(text: str) -> Contact:
    """`"Name" <sip:u@h;transport=tcp>;expires=60` -> Contact; raises RegisterError(400)."""
    text = text.strip()
    if text == "*":
        return Contact("*", {})
    if "<" in text:
        start, end = text.find("<"), text.find(">")
        if end < start:
            raise RegisterError(400, "Bad Contact")
        uri, rest = text[start + 1:end].strip(), text[end + 1:]
    else:       # no angle brackets: parameters after the URI belong to the header
        uri, _, rest = text.partition(";")
        rest = ";" + rest if rest else ""
    if not uri.lower().startswith(("sip:", "sips:")):
        raise RegisterError(400, "Bad Contact - SIP URI expected")
    params: dict[str, str] = {}
    for param in rest.split(";"):
        name, _, value = param.strip().partition("=")
        if name:
            params[name.lower()] = value.strip().strip('"')
    return Contact(uri, params)


def requested_contact(contact_values: Iterable[str]) -> Contact | None:
    """The Contact of a REGISTER (None for a query); at most one."""
    contacts = [c for value in contact_values for c in split_header_list(value)]
    if len(contacts) > 1:
        raise RegisterError(400, "Bad Request - one Contact per registration")
    return parse_contact(contacts[0]) if contacts else None


def lifetime(contact: Contact, expires_header: str | None) -> int:
    """Seconds the binding lives (0: remove it), from the Contact's expires parameter or the
    Expires header; raises RegisterError(423) when too brief, 400 when not a number."""
    text = contact.params.get("expires", expires_header or "")
    text = text.strip()
    if contact.uri == "*":
        if text != "0":
            raise RegisterError(400, "Bad Request - Contact * needs Expires: 0")
        return 0
    if not text:
        return DEFAULT_EXPIRES
    if not text.isdigit():
        raise RegisterError(400, "Bad Request - bad expires value")
    seconds = int(text)
    if 0 < seconds < MIN_EXPIRES:
        raise RegisterError(423, "Interval Too Brief", f"Min-Expires: {MIN_EXPIRES}\r\n")
    return min(seconds, MAX_EXPIRES)
