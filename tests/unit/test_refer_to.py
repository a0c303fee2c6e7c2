import pytest

from vpbx.core import refer
from vpbx.core.refer import BadRefer, ReferTo, Refused, Replaces, normalise, parse_refer_to


@pytest.mark.parametrize("value,parsed", [
    ("<sip:100@t1.test>", ReferTo("sip", "100", "t1.test")),
    ("sip:100@T1.test", ReferTo("sip", "100", "t1.test")),
    ('"Desk" <sip:100@127.0.0.1:5060;transport=udp>', ReferTo("sip", "100", "127.0.0.1:5060")),
    ("<tel:100>", ReferTo("tel", "100", "")),
    ("tel:+49-30-123456;phone-context=x", ReferTo("tel", "+4930123456", "")),
    ("<sip:100@t1.test?Replaces=abc%40host%3Bto-tag%3Dt1%3Bfrom-tag%3Df1>",
     ReferTo("sip", "100", "t1.test", Replaces("abc@host", "t1", "f1"))),
])
def test_refer_to_forms(value, parsed):
    assert parse_refer_to(value) == parsed


@pytest.mark.parametrize("value", ["", "  ", "<sip:100@t1.test", "<http://x/>", "<sip:bob@t1.test>",
                                   "<sip:100@t1.test?Replaces=abc%3Bto-tag%3Dt1>"])
def test_bad_refer_to(value):
    with pytest.raises(BadRefer):
        parse_refer_to(value)


def decide(value, *, exts=("100", "101"), prefixes=""):
    return normalise(parse_refer_to(value), "t1.test", {"t1.test", "t2.test"}.__contains__,
                     lambda user: user in exts, prefixes,
                     lambda host: host in ("127.0.0.1:5060", "127.0.0.1"))


@pytest.mark.parametrize("value", ["<sip:100@t1.test>", "<sip:100@127.0.0.1:5060>", "<tel:100>",
                                   "sip:100@127.0.0.1"])
def test_short_forms_become_the_tenants_extension_uri(value):
    assert decide(value) == "<sip:100@t1.test>"


def test_replaces_is_kept():
    assert decide("<sip:100@t1.test?Replaces=abc%40h%3Bto-tag%3Dt1%3Bfrom-tag%3Df1>") == (
        "<sip:100@t1.test?Replaces=abc%40h%3Bto-tag%3Dt1%3Bfrom-tag%3Df1>")


@pytest.mark.parametrize("value,prefixes,code", [
    ("<sip:100@t2.test>", "", 403),                  # another tenant
    ("<sip:100@evil.example>", "", 403),             # somewhere else
    ("<sip:999@t1.test>", "", 403),                  # no such extension
    ("<sip:004930123456@t1.test>", "", 403),         # external, not allowed
])
def test_refused(value, prefixes, code):
    refused = decide(value, prefixes=prefixes)
    assert isinstance(refused, Refused) and refused.code == code


def test_external_numbers_the_tenant_allows():
    assert decide("<tel:+4930123456>", prefixes="+49") == "<sip:+4930123456@t1.test>"
    assert decide("<sip:004930123456@t1.test>", prefixes="0049") == "<sip:004930123456@t1.test>"


def test_parties_are_extensions_by_number_and_trunks_by_address():
    assert refer.party("ext", "201", "udp:127.0.0.1:5071") == "ext:201"
    assert refer.party("trunk", "", "udp:192.0.2.1:5060") == "src:192.0.2.1:5060"


def test_a_call_may_be_replaced_by_its_parties_and_a_granted_transferee_in_time():
    parties = {"ext:201", "ext:100"}
    granted = refer.grant("ext:202", 1000.0)
    assert refer.may_replace("ext:201", parties, "", 1000.0)
    assert refer.may_replace("ext:202", parties, granted, 1059.0)
    assert not refer.may_replace("ext:202", parties, granted, 1061.0)
    assert not refer.may_replace("ext:203", parties, granted, 1001.0)
    assert not refer.may_replace("ext:202", parties, "", 1001.0)
    assert not refer.may_replace("ext:202", parties, "ext:202 soon", 1001.0)


def test_a_trunks_party_goes_to_an_external_number_only_when_the_tenant_allows_it():
    value = parse_refer_to("<sip:004930123456@t1.test>")

    def decide_for(trunk_client, trunk_to_trunk):
        return normalise(value, "t1.test", {"t1.test"}.__contains__, lambda user: False,
                         "0049", lambda host: False, trunk_client=trunk_client,
                         trunk_to_trunk=trunk_to_trunk)

    assert decide_for(False, False) == "<sip:004930123456@t1.test>"     # an extension's
    assert decide_for(True, True) == "<sip:004930123456@t1.test>"
    refused = decide_for(True, False)
    assert refused == Refused(403, "Forbidden - a trunk's party to an external number")


def test_a_trunks_party_may_join_a_call_with_an_external_number():
    """Replaces: the transferee takes over a call in progress, no new call goes out."""
    value = parse_refer_to("<sip:004930123456@t1.test?Replaces=abc%3Bto-tag%3Dt1%3Bfrom-tag%3Df1>")
    decided = normalise(value, "t1.test", {"t1.test"}.__contains__, lambda user: False, "0049",
                        lambda host: False, trunk_client=True)
    assert isinstance(decided, str) and decided.startswith("<sip:004930123456@t1.test?")


def test_a_trunks_party_may_always_go_to_an_extension():
    assert normalise(parse_refer_to("<sip:100@t1.test>"), "t1.test", {"t1.test"}.__contains__,
                     lambda user: user == "100", "", lambda host: False,
                     trunk_client=True) == "<sip:100@t1.test>"
