import pytest

from vpbx.core import settings


def test_defaults_when_nothing_is_stored():
    assert settings.effective({}) == {
        "pbx_transfer": False, "transfer_caller_id": False, "transfer_hold_media": "music",
        "transfer_digit_timeout": 3, "transfer_no_answer_timeout": 15, "transfer_recall": True,
        "transfer_recall_retries": 2, "transfer_recall_delay": 10, "transfer_ringback_hz": 425,
        "transfer_ringback_on_ms": 1000, "transfer_ringback_off_ms": 4000, "transfer_external": "",
        "transfer_max_per_minute": 30, "transfer_trunk_to_trunk": False}


@pytest.mark.parametrize("text,stored", [("on", "on"), ("YES", "on"), ("1", "on"), ("off", "off"),
                                         ("False", "off"), (" no ", "off")])
def test_bool_spellings(text, stored):
    assert settings.normalise("pbx_transfer", text) == stored


def test_stored_values_are_typed():
    values = settings.effective({"pbx_transfer": "on", "transfer_hold_media": "ringback"})
    assert values["pbx_transfer"] is True and values["transfer_hold_media"] == "ringback"


@pytest.mark.parametrize("name,text,message", [
    ("pbx_transfer", "maybe", "on or off"),
    ("transfer_hold_media", "silence", "music, ringback"),
    ("no_such_thing", "on", "unknown setting"),
    ("transfer_digit_timeout", "0", "from 1 to 30"),
    ("transfer_digit_timeout", "soon", "from 1 to 30"),
])
def test_bad_values_are_refused_with_a_reason(name, text, message):
    with pytest.raises(ValueError, match=message):
        settings.normalise(name, text)


def test_render_round_trips_bools():
    assert settings.render(True) == "on" and settings.render("music") == "music"


def test_int_setting():
    assert settings.normalise("transfer_digit_timeout", " 5 ") == "5"
    assert settings.effective({"transfer_digit_timeout": "5"})["transfer_digit_timeout"] == 5


@pytest.mark.parametrize("text,stored", [("0049, 0030", "0049,0030"), ("", ""), ("''", ""), (" 0 ", "0")])
def test_external_prefixes(text, stored):
    assert settings.normalise("transfer_external", text) == stored


@pytest.mark.parametrize("text", ["+", "00a", "0049;0030"])
def test_bad_external_prefixes(text):
    with pytest.raises(ValueError, match="digit prefixes"):
        settings.normalise("transfer_external", text)
