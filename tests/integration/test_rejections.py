"""Calls the proxy must refuse, each with a clear SIP answer and nothing left behind."""
from calls import probe
from conftest import OTHER_TENANT, TENANT


def test_unknown_extension_is_404(pbx):
    assert probe(pbx, "201", "299").startswith("404")


def test_unregistered_extension_is_480(pbx):
    assert probe(pbx, "201", "202").startswith("480")


def test_unknown_source_and_tenant_is_challenged_like_an_extension(pbx):
    # No enumeration: a caller that is no extension gets the challenge a protected one gets
    # (and a 403 for any credentials: test_auth.py).
    assert probe(pbx, "555", "201", from_domain="unknown.test").startswith("407")


def test_unknown_extension_of_known_tenant_is_challenged_like_an_extension(pbx):
    assert probe(pbx, "999", "201").startswith("407")


def test_call_across_tenants_is_403(pbx):
    assert probe(pbx, "201", "300", to_domain=OTHER_TENANT).startswith("403")


def test_protected_extension_is_challenged_407(pbx):
    assert probe(pbx, "200", "201").startswith("407")


def test_loop_is_483(pbx):
    assert probe(pbx, "201", "202", max_forwards=0).startswith("483")


def test_malformed_request_is_400(pbx):
    # An Expires value that is no number: the sanity checks refuse it.
    assert probe(pbx, "201", "202", extra_header="Expires: soon").startswith("400")


def test_request_uri_of_tenant_is_required(pbx):
    assert probe(pbx, "201", "202", to_domain="elsewhere.example").startswith("403")


def test_trunk_call_to_non_extension_is_404(pbx):
    assert probe(pbx, "+4930123456", "999", from_domain="carrier.example",
                 to_domain=f"127.0.0.1:{pbx.cfg.sip_port}", port=pbx.trunk_port).startswith("404")


def test_tenant_is_named_by_domain_not_by_proxy_address(pbx):
    # Extensions present themselves with their tenant domain in From; the proxy's
    # address there identifies no tenant.
    assert probe(pbx, "201", "202", from_domain="127.0.0.1").startswith("407")
    assert TENANT
