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
