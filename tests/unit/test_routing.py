import pytest

from vpbx.core import routing
from vpbx.core.routing import (FORBIDDEN, InviteFacts, Register, Reject, ToExtension, ToTrunk,
                          auth_verdict, route_invite, route_register)

BASE = dict(from_user="100", from_domain="acme.example", ruri_user="101", ruri_domain="acme.example",
            ruri_is_local=False, trunk_tenant=None, tenant_known=True, caller_secret="",
            callee_is_ext=True, outbound=None, decoy_secret="decoy")


def decide(**changes):
    return route_invite(InviteFacts(**{**BASE, **changes}))


def test_extension_to_extension():
    d = decide()
    assert d.outcome == ToExtension("acme.example", "101")
    assert (d.secret, d.caller_role, d.caller_ext) == (None, "ext", "100")


def test_protected_caller_must_authenticate_even_when_the_call_is_refused():
    assert decide(caller_secret="ha1").secret == "ha1"
    assert decide(caller_secret="ha1", callee_is_ext=False).secret == "ha1"


def test_proxy_address_in_request_uri_means_the_callers_tenant():
    assert decide(ruri_domain="127.0.0.1", ruri_is_local=True).outcome == ToExtension("acme.example", "101")


@pytest.mark.parametrize("changes", [
    dict(tenant_known=False, caller_secret=None),     # unknown tenant
    dict(caller_secret=None),                         # unknown extension
    dict(tenant_known=False, caller_secret=None, callee_is_ext=False, ruri_domain="x.example"),
])
def test_callers_that_are_no_extension_are_challenged_like_protected_ones(changes):
    # No enumeration: the same challenge as for a protected extension, a secret nobody
    # knows, and the same refusal as a wrong password should the check ever pass.
    d = decide(**changes)
    assert (d.outcome, d.secret) == (FORBIDDEN, "decoy")
    assert d.outcome == Reject(403, "Forbidden")
    assert d.caller_role == ""


@pytest.mark.parametrize("changes,code", [
    (dict(ruri_domain="other.example"), 403),
    (dict(callee_is_ext=False), 404),
    (dict(callee_is_ext=False, ruri_user="555", outbound="192.0.2.1:5060"), 404),
    (dict(callee_is_ext=False, ruri_user="alice", outbound="192.0.2.1:5060"), 404),
])
def test_refusals(changes, code):
    assert isinstance(decide(**changes).outcome, Reject)
    assert decide(**changes).outcome.code == code


@pytest.mark.parametrize("number", ["+4930123456", "0049301234", "5551234"])
def test_external_numbers_leave_through_the_outbound_trunk(number):
    d = decide(callee_is_ext=False, ruri_user=number, outbound="192.0.2.1:5060")
    assert d.outcome == ToTrunk("acme.example", "192.0.2.1:5060")


def test_trunk_call_reaches_extension_of_the_trunks_tenant_without_auth():
    d = decide(trunk_tenant="acme.example", from_domain="carrier.example", caller_secret=None,
               tenant_known=True, ruri_domain="127.0.0.1")
    assert d.outcome == ToExtension("acme.example", "101")
    assert (d.secret, d.caller_role) == (None, "trunk")


def test_trunk_call_to_non_extension_is_404():
    d = decide(trunk_tenant="acme.example", callee_is_ext=False)
    assert d.outcome == Reject(404, "Not Found")


def test_register():
    assert (route_register("acme.example", "100", True, "ha1", "decoy").outcome
            == Register("acme.example", "100"))
    assert route_register("acme.example", "100", True, "ha1", "decoy").secret == "ha1"
    assert route_register("acme.example", "100", True, "", "decoy").secret is None   # open


@pytest.mark.parametrize("known,secret", [(False, None), (True, None)])
def test_register_of_no_extension_is_challenged_against_the_decoy(known, secret):
    d = route_register("acme.example", "999", known, secret, "decoy")
    assert (d.outcome, d.secret) == (FORBIDDEN, "decoy")


@pytest.mark.parametrize("code,verdict", [
    (1, "ok"), (2, "ok"),
    (-2, "failed"),         # wrong password (or the decoy)
    (-3, "failed"),         # unknown user
    (-8, "failed"),         # the auth user is another user
    (-4, "stale"),          # nonce expired, or its nc seen before: a replay
    (-6, "stale"),          # one-time nonce used again: a replay
    (-5, "challenge"),      # no credentials for the realm
    (-1, "challenge"),      # credentials that could not be checked (e.g. a forged nonce)
])
def test_auth_verdicts(code, verdict):
    assert auth_verdict(code) == verdict


@pytest.mark.parametrize("number,prefixes,allowed", [
    ("004930123456", "0049", True),
    ("004930123456", "0030,0049", True),
    ("004930123456", "", False),                 # no prefixes: extensions only
    ("0033123456", "0049", False),
    ("100", "1", False),                         # an extension-like number is not external
])
def test_external_transfer_targets(number, prefixes, allowed):
    assert routing.external_target(number, prefixes) is allowed
