import pytest

from vpbx.core import provisioning as p


def test_domain_is_lowercased_and_stripped_of_root_dot():
    assert p.domain("Acme.Example.") == "acme.example"


@pytest.mark.parametrize("text", ["", "a..b", "-x.example", "x_y.example", "10.0.0.1", "a" * 64 + ".x"])
def test_bad_domains(text):
    with pytest.raises(ValueError):
        p.domain(text)


@pytest.mark.parametrize("text", ["10", "100", "999999"])
def test_extensions(text):
    assert p.extension(text) == text


@pytest.mark.parametrize("text", ["1", "0100", "1234567", "*100", "10a", ""])
def test_bad_extensions(text):
    with pytest.raises(ValueError, match="not a valid extension"):
        p.extension(text)


def test_ha1_is_the_digest_of_user_realm_password():
    # The worked example of RFC 2617, section 3.5.
    assert p.ha1("Mufasa", "testrealm@host.com", "Circle Of Life") == "939e7578ed9e3c518a452acee763bce9"


@pytest.mark.parametrize("text,canonical", [("127.0.0.1:5070", "127.0.0.1:5070"),
                                            ("[::1]:5060", "[::1]:5060"),
                                            ("[0:0::1]:5060", "[::1]:5060")])
def test_hostports(text, canonical):
    assert p.hostport(text) == canonical


@pytest.mark.parametrize("text", ["127.0.0.1", "carrier.example:5060", "1.2.3.4:0", "1.2.3.4:70000",
                                  "999.1.1.1:5060", "::1:5060"])
def test_bad_hostports(text):
    with pytest.raises(ValueError):
        p.hostport(text)


@pytest.mark.parametrize("text", ["", "with space", "x" * 129])
def test_bad_passwords(text):
    with pytest.raises(ValueError):
        p.password(text)
