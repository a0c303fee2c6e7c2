import pytest

from vpbx.core.registration import (Contact, RegisterError, lifetime, parse_contact, requested_contact,
                               split_header_list)


def test_split_ignores_commas_in_quotes_and_brackets():
    value = '"Doe, John" <sip:a@h;x=1,2>;expires=5, <sip:b@h>'
    assert split_header_list(value) == ['"Doe, John" <sip:a@h;x=1,2>;expires=5', "<sip:b@h>"]


def test_parse_contact_with_name_uri_params_and_header_params():
    c = parse_contact('"Phone" <sip:100@10.0.0.5:5062;transport=tcp>;Expires=120;+sip.instance="<urn:x>"')
    assert c.uri == "sip:100@10.0.0.5:5062;transport=tcp"
    assert c.params == {"expires": "120", "+sip.instance": "<urn:x>"}


def test_parse_bare_contact_parameters_belong_to_the_header():
    assert parse_contact("sip:100@h:5062;expires=60") == Contact("sip:100@h:5062", {"expires": "60"})


@pytest.mark.parametrize("text", ["<tel:+100>", "<sip:100@h", "mailto:x@y"])
def test_bad_contacts(text):
    with pytest.raises(RegisterError) as err:
        parse_contact(text)
    assert err.value.code == 400


def test_requested_contact_one_at_most():
    assert requested_contact([]) is None
    assert requested_contact(["<sip:a@h>"]) == Contact("sip:a@h", {})
    for values in (["<sip:a@h>, <sip:b@h>"], ["<sip:a@h>", "<sip:b@h>"]):
        with pytest.raises(RegisterError, match="one Contact"):
            requested_contact(values)


@pytest.mark.parametrize("param,header,seconds", [
    (None, None, 3600), (None, "300", 300), ("120", "300", 120), ("0", None, 0),
    (None, "0", 0), (None, "86400", 3600), (None, "60", 60),
])
def test_lifetime(param, header, seconds):
    contact = Contact("sip:a@h", {"expires": param} if param is not None else {})
    assert lifetime(contact, header) == seconds


def test_too_brief_is_423_with_min_expires():
    with pytest.raises(RegisterError) as err:
        lifetime(Contact("sip:a@h", {}), "30")
    assert (err.value.code, err.value.headers) == (423, "Min-Expires: 60\r\n")


@pytest.mark.parametrize("contact,header", [(Contact("*", {}), "300"), (Contact("*", {}), None),
                                            (Contact("sip:a@h", {}), "soon")])
def test_bad_lifetimes_are_400(contact, header):
    with pytest.raises(RegisterError) as err:
        lifetime(contact, header)
    assert err.value.code == 400


def test_wildcard_with_zero_removes():
    assert lifetime(Contact("*", {}), "0") == 0
