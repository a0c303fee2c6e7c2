from vpbx.core.route_mark import LENGTH, RouteMark


def test_a_mark_is_the_same_for_the_same_dialog_and_secret():
    assert RouteMark("s" * 32).of("c@h", "tag1") == RouteMark("s" * 32).of("c@h", "tag1")
    assert len(RouteMark("s" * 32).of("c@h", "tag1")) == LENGTH


def test_a_mark_differs_with_the_call_the_tag_or_the_secret():
    mark = RouteMark("s" * 32).of("c@h", "tag1")
    assert mark != RouteMark("s" * 32).of("c2@h", "tag1")
    assert mark != RouteMark("s" * 32).of("c@h", "tag2")
    assert mark != RouteMark("t" * 32).of("c@h", "tag1")
    # The two fields cannot be shifted into each other.
    assert RouteMark("s" * 32).of("a", "bc") != RouteMark("s" * 32).of("ab", "c")


def test_a_legs_request_uri_has_its_mark_only_where_the_proxy_put_it():
    mark = RouteMark("s" * 32)
    ours = f"sip:vpbx@127.0.0.1:5060;vpbx={mark.of_leg('vpbx-leg1-c@h')}"
    assert mark.marks_leg(ours, "vpbx-leg1-c@h")
    assert not mark.marks_leg(ours, "vpbx-leg2-c@h")
    assert not mark.marks_leg("sip:vpbx@127.0.0.1:5060", "vpbx-leg1-c@h")
    assert not RouteMark("t" * 32).marks_leg(ours, "vpbx-leg1-c@h")
