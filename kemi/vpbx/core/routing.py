"""Who may call whom: the routing decisions for REGISTER and initial INVITE (pure).

The KEMI glue gathers the facts (from the SIP message and one Redis round
trip), asks these functions, and carries out the answer.

No enumeration (Asterisk's "alwaysauthreject"): a caller or registrant that is no
extension (unknown tenant or number) is challenged like a protected extension, checked
against a decoy secret nobody knows, and refused with the same 403 as a wrong password.
Open extensions (no password) stay discoverable: they are believed without a challenge.
"""
import re
from dataclasses import dataclass

# Numbers that leave through the outbound trunk: +E.164, an outside-line 0, or anything
# longer than an extension. A short number that is no extension is a 404, not a call out.
_EXTERNAL = re.compile(r"^(\+[0-9]{3,20}|0[0-9]{2,20}|[0-9]{7,20})$")


@dataclass(frozen=True)
class Reject:
    code: int
    reason: str


FORBIDDEN = Reject(403, "Forbidden")     # every failed or impossible authentication


@dataclass(frozen=True)
class ToExtension:
    tenant: str
    ext: str


@dataclass(frozen=True)
class ToTrunk:
    tenant: str
    hostport: str


@dataclass(frozen=True)
class Register:
    tenant: str
    ext: str


Outcome = Reject | ToExtension | ToTrunk | Register


@dataclass(frozen=True)
class Decision:
    """What to do with a request. `secret` is the HA1 the caller must prove
    (digest auth) before `outcome` applies; None when no auth applies."""
    outcome: Outcome
    secret: str | None = None
    caller_role: str = ""       # "ext" | "trunk" | "" (unknown)
    caller_ext: str = ""


@dataclass(frozen=True)
class InviteFacts:
    from_user: str
    from_domain: str
    ruri_user: str
    ruri_domain: str
    ruri_is_local: bool             # the R-URI host is this proxy's own address
    trunk_tenant: str | None        # tenant whose trunk sent the request (by source address)
    tenant_known: bool              # the call's tenant exists
    caller_secret: str | None       # None: From user is no extension; "": open; else HA1
    callee_is_ext: bool             # R-URI user is an extension of the call's tenant
    outbound: str | None            # the tenant's outbound trunk, IP:PORT
    decoy_secret: str               # HA1 nobody knows: what a caller that is no extension must prove


def address(ip: str, port: object) -> str:
    """IP:PORT as SIP writes it ([v6]:port)."""
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def uri_hostport(uri: str) -> str:
    """The host:port a SIP URI addresses (5060, sips: 5061, when it names no port)."""
    scheme, _, rest = uri.strip().partition(":")
    hostport = rest.rpartition("@")[2].split(";")[0].split("?")[0]
    if hostport.startswith("["):
        host, _, port = hostport[1:].partition("]")
        port = port.lstrip(":")
        return address(host, port or default_port(scheme))
    host, _, port = hostport.partition(":")
    return address(host, port or default_port(scheme))


def default_port(scheme: str) -> int:
    return 5061 if scheme.lower() == "sips" else 5060


def external_target(number: str, prefixes: str) -> bool:
    """Whether a transfer may go to `number` outside the tenant: an external number (as the
    outbound routing sees it) starting with one of the tenant's allowed prefixes."""
    allowed = [p for p in prefixes.split(",") if p]
    return bool(_EXTERNAL.match(number)) and any(number.startswith(p) for p in allowed)


def route_invite(f: InviteFacts) -> Decision:
    if f.trunk_tenant:
        if f.callee_is_ext:
            return Decision(ToExtension(f.trunk_tenant, f.ruri_user), caller_role="trunk")
        return Decision(Reject(404, "Not Found"), caller_role="trunk")
    if not f.tenant_known or f.caller_secret is None:
        return Decision(FORBIDDEN, f.decoy_secret)
    secret = f.caller_secret or None
    tenant = f.from_domain

    def decided(outcome: Outcome) -> Decision:
        return Decision(outcome, secret, "ext", f.from_user)

    if f.ruri_domain != tenant and not f.ruri_is_local:
        return decided(Reject(403, "Forbidden - other tenant or foreign domain"))
    if f.callee_is_ext:
        return decided(ToExtension(tenant, f.ruri_user))
    if f.outbound and _EXTERNAL.match(f.ruri_user):
        return decided(ToTrunk(tenant, f.outbound))
    return decided(Reject(404, "Not Found"))


def route_register(domain: str, user: str, tenant_known: bool, secret: str | None,
                   decoy_secret: str) -> Decision:
    """REGISTER of user@domain (the To URI). `secret` as in InviteFacts.caller_secret."""
    if not tenant_known or secret is None:
        return Decision(FORBIDDEN, decoy_secret)
    return Decision(Register(domain, user), secret or None, "ext", user)


# What pv_auth_check's result means for the request (Kamailio auth module's codes).
AUTH_FAILED = {-2, -3, -8}      # wrong password, unknown user, auth user is not the To/From user
AUTH_STALE = {-4, -6}           # nonce expired or already used (a replay): challenge, stale=true


def auth_verdict(code: int) -> str:
    """"ok", "failed" (answered 403 and counted towards the lockout), "stale" (challenged
    again with stale=true: the phone recomputes without asking for the password) or
    "challenge" (no credentials for this realm, or none that could be checked)."""
    if code > 0:
        return "ok"
    if code in AUTH_FAILED:
        return "failed"
    return "stale" if code in AUTH_STALE else "challenge"
