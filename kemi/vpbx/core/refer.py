"""Phone transfers (REFER) through the proxy (pure): parsing and normalising Refer-To.

A phone names the target as it likes: `<sip:100@tenant>`, `<sip:100@proxy-ip:5060>`,
`<tel:100>`, with or without angle brackets, an attended transfer carrying `?Replaces=...`.
The proxy hands the transferee one form, the tenant's extension URI, and refuses what would
leave the tenant or reach an external number the tenant does not allow.
"""
import re
from collections.abc import Callable, Container
from dataclasses import dataclass
from urllib.parse import quote, unquote

from vpbx.core import routing


class BadRefer(ValueError):
    """-> 400"""


@dataclass(frozen=True)
class Replaces:
    callid: str
    to_tag: str
    from_tag: str


@dataclass(frozen=True)
class ReferTo:
    scheme: str             # "sip", "sips" or "tel"
    user: str               # "100", "+4930123456"
    host: str               # "" for tel:
    replaces: Replaces | None = None


_URI = re.compile(r"^(sips?|tel):([^@;?>]+)(?:@([^;?>]+))?([^?>]*)(?:\?([^>]*))?$", re.I)


def parse_refer_to(value: str | None) -> ReferTo:
    """A Refer-To header value -> ReferTo; raises BadRefer."""
    text = (value or "").strip()
    if not text:
        raise BadRefer("no Refer-To")
    if "<" in text:
        start, end = text.find("<"), text.find(">", text.find("<"))
        if end < 0:
            raise BadRefer("unclosed < in Refer-To")
        text = text[start + 1:end]
    else:
        text = text.split(";", 1)[0] if text.lower().startswith("tel:") else text
    match = _URI.match(text.strip())
    if not match:
        raise BadRefer("Refer-To is no SIP or tel URI")
    scheme, user, host, _params, headers = match.groups()
    user = unquote(user)
    if scheme.lower() == "tel":
        user = user.replace("-", "").replace(".", "").replace(" ", "")
    if not re.fullmatch(r"\+?[0-9]{1,20}", user):
        raise BadRefer(f"Refer-To user {user!r} is no number")
    return ReferTo(scheme.lower(), user, (host or "").lower(), _replaces(headers or ""))


def _replaces(headers: str) -> Replaces | None:
    for header in headers.split("&"):
        name, _, value = header.partition("=")
        if name.strip().lower() == "replaces":
            parts = unquote(value).split(";")
            params = dict(p.strip().split("=", 1) for p in parts[1:] if "=" in p)
            tags = {k.lower(): v for k, v in params.items()}
            if not parts[0] or "to-tag" not in tags or "from-tag" not in tags:
                raise BadRefer("Replaces needs a Call-ID, to-tag and from-tag")
            return Replaces(parts[0].strip(), tags["to-tag"], tags["from-tag"])
    return None


@dataclass(frozen=True)
class Refused:
    code: int
    reason: str


def normalise(refer_to: ReferTo, tenant: str, is_tenant: Callable[[str], bool],
              is_ext: Callable[[str], bool], external_prefixes: str, proxy_host: Callable[[str], bool],
              trunk_client: bool = False, trunk_to_trunk: bool = False) -> str | Refused:
    """Where the transferee will be sent -> the Refer-To value to relay, or Refused.

    is_tenant(domain) -> whether domain is a known tenant (asked only for a foreign host);
    is_ext(user) -> whether user is an extension of the tenant; proxy_host(host) -> whether
    host names this proxy. trunk_client: the transferee is a trunk's party, who may be sent
    to (call) an external number only when the tenant allows it (trunk_to_trunk)."""
    host = refer_to.host
    if refer_to.scheme != "tel" and host != tenant and not proxy_host(host):
        if is_tenant(host.split(":")[0]):
            return Refused(403, "Forbidden - transfer to another tenant")
        return Refused(403, "Forbidden - transfer target outside the tenant")
    user = refer_to.user
    if not is_ext(user):
        if not routing.external_target(user, external_prefixes):
            return Refused(403, "Forbidden - no such extension, or an external number "
                                "the tenant does not allow")
        # (With Replaces the transferee joins a call in progress: nothing new goes out.)
        if trunk_client and not trunk_to_trunk and not refer_to.replaces:
            return Refused(403, "Forbidden - a trunk's party to an external number")
    uri = f"sip:{user}@{tenant}"
    if refer_to.replaces:
        r = refer_to.replaces
        value = f"{r.callid};to-tag={r.to_tag};from-tag={r.from_tag}"
        uri += f"?Replaces={quote(value, safe='')}"
    return f"<{uri}>"


# ---- who may send an INVITE with Replaces ------------------------------------------

REPLACE_GRANT_SECONDS = 60      # how long a relayed REFER's transferee may use its Replaces


def party(role: str | None, ext: str | None, src: str) -> str:
    """How the proxy knows a party of a call: an extension by its number (authenticated when
    it has a password), anyone else (a trunk) by its address ("ip:port" of proto:ip:port)."""
    return f"ext:{ext}" if role == "ext" and ext else f"src:{src.partition(':')[2] or src}"


def grant(transferee: str, now: float) -> str:
    """The record field value that lets the transferee of a relayed REFER replace the call
    its Refer-To names, for REPLACE_GRANT_SECONDS."""
    return f"{transferee} {now + REPLACE_GRANT_SECONDS:.0f}"


def may_replace(sender: str, parties: Container[str], granted: str | None, now: float) -> bool:
    """Whether `sender` (party()) may replace a call whose parties are `parties`: one of them,
    or the transferee a REFER relayed through the proxy named (`granted`, grant()), in time."""
    who, _, until = (granted or "").partition(" ")
    return sender in parties or (sender == who and until.isdigit() and now < int(until))
