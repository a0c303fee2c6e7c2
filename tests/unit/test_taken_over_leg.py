"""An attended REFER's other dialog as a leg of the client's call (plan.taken_over_fields)."""
from vpbx.core.plan import taken_over, taken_over_fields

# A (201) called B (100): the dialog the REFER's Replaces names.
OTHER = {"callid": "y@h", "caller_uri": "sip:201@t1.test", "caller_tag": "atag",
         "caller_cseq": "3", "caller_ext": "201", "caller_role": "ext",
         "callee_uri": "sip:100@t1.test", "callee_tag": "btag", "callee_ext": "100",
         "callee_role": "ext", "callee_contact": "<sip:100@127.0.0.1:5071>;expires=60",
         "callee_src": "udp:127.0.0.1:5071", "callee_socket": "udp:127.0.0.1:5060",
         "callee_sdp": "v=0\r\n"}


def test_the_proxy_speaks_in_the_other_dialog_as_the_phone_and_reaches_b_where_it_is():
    fields = taken_over_fields("leg1", OTHER, "callee")
    assert fields["leg1_callid"] == "y@h"
    assert fields["leg1_from"] == "<sip:201@t1.test>;tag=atag"          # as A
    assert (fields["leg1_uri"], fields["leg1_tag"]) == ("sip:100@t1.test", "btag")
    assert fields["leg1_cseq"] == "3"                                    # A's last CSeq
    assert fields["leg1_contact"] == "sip:100@127.0.0.1:5071"
    assert fields["leg1_src"] == "udp:127.0.0.1:5071"
    assert (fields["leg1_ext"], fields["leg1_role"], fields["leg1_sdp"]) == ("100", "ext", "v=0\r\n")
    assert fields["leg1_release"] == "caller"                           # A's end, hung up later


def test_b_may_be_the_caller_of_the_other_dialog():
    swapped = {k.replace("caller", "X").replace("callee", "caller").replace("X", "callee"): v
               for k, v in OTHER.items()}
    fields = taken_over_fields("leg2", swapped, "caller")
    assert fields["leg2_from"] == "<sip:201@t1.test>;tag=atag"
    assert fields["leg2_release"] == "callee"


def test_a_call_holds_the_dialogs_it_took_over_until_given_back():
    call = {"x_legs": "2", "leg1_callid": "vpbx-leg1-x", "leg2_callid": "y@h", "leg2_release": "caller"}
    assert taken_over(call) == ["y@h"]
    assert taken_over({**call, "leg2_release": ""}) == []
