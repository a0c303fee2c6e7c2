"""Who may call whom: the routing decisions for REGISTER and initial INVITE (pure).

The KEMI glue gathers the facts (from the SIP message and one Redis round
trip), asks these functions, and carries out the answer.
"""
import re
from dataclasses import dataclass
from typing import Optional

# Numbers that leave through the outbound trunk: +E.164, an outside-line 0, or anything
# longer than an extension. A short number that is no extension is a 404, not a call out.
_EXTERNAL = re.compile(r"^(\+[0-9]{3,20}|0[0-9]{2,20}|[0-9]{7,20})$")


@dataclass(frozen=True)
class Reject:
    code: int
    reason: str


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


@dataclass(frozen=True)
class Decision:
    """What to do with a request. `secret` is the HA1 the caller must prove
    (digest auth) before `outcome` applies; None when no auth applies."""
    outcome: object
    secret: Optional[str] = None
    caller_role: str = ""       # "ext" | "trunk" | "" (unknown)
    caller_ext: str = ""


@dataclass(frozen=True)
class InviteFacts:
    from_user: str
    from_domain: str
    ruri_user: str
    ruri_domain: str
    ruri_is_local: bool             # the R-URI host is this proxy's own address
    trunk_tenant: Optional[str]     # tenant whose trunk sent the request (by source address)
    tenant_known: bool              # the call's tenant exists
    caller_secret: Optional[str]    # None: From user is no extension; "": open; else HA1
    callee_is_ext: bool             # R-URI user is an extension of the call's tenant
    outbound: Optional[str]         # the tenant's outbound trunk, IP:PORT


def external_target(number, prefixes):
    """Whether a transfer may go to `number` outside the tenant: an external number (as the
    outbound routing sees it) starting with one of the tenant's allowed prefixes."""
    allowed = [p for p in prefixes.split(",") if p]
    return bool(_EXTERNAL.match(number)) and any(number.startswith(p) for p in allowed)


def route_invite(f: InviteFacts) -> Decision:
    if f.trunk_tenant:
        if f.callee_is_ext:
            return Decision(ToExtension(f.trunk_tenant, f.ruri_user), caller_role="trunk")
        return Decision(Reject(404, "Not Found"), caller_role="trunk")
    if not f.tenant_known:
        return Decision(Reject(403, "Forbidden - unknown source or tenant"))
    if f.caller_secret is None:
        return Decision(Reject(403, "Forbidden - unknown extension"))
    secret = f.caller_secret or None
    tenant = f.from_domain

    def decided(outcome):
        return Decision(outcome, secret, "ext", f.from_user)

    if f.ruri_domain != tenant and not f.ruri_is_local:
        return decided(Reject(403, "Forbidden - other tenant or foreign domain"))
    if f.callee_is_ext:
        return decided(ToExtension(tenant, f.ruri_user))
    if f.outbound and _EXTERNAL.match(f.ruri_user):
        return decided(ToTrunk(tenant, f.outbound))
    return decided(Reject(404, "Not Found"))


def route_register(domain, user, tenant_known, secret) -> Decision:
    """REGISTER of user@domain (the To URI). `secret` as in InviteFacts.caller_secret."""
    if not tenant_known:
        return Decision(Reject(403, "Forbidden - unknown tenant"))
    if secret is None:
        return Decision(Reject(403, "Forbidden - unknown extension"))
    return Decision(Register(domain, user), secret or None, "ext", user)


AUTH_FAILURES = {
    -2: "Forbidden - wrong password",
    -3: "Forbidden - unknown user",
    -8: "Forbidden - credentials are for another user",
}


def auth_failure_reason(code):
    """Reason for a 403 after a failed digest check, or None: challenge (again)."""
    return AUTH_FAILURES.get(code)
