import pytest

from vpbx.core import bencode


def test_round_trip():
    value = {"command": "offer", "flags": ["trust address", "port latching"], "n": 42, "sdp": "v=0\r\n"}
    assert bencode.decode(bencode.encode(value)) == value


def test_wire_form_sorts_keys():
    assert bencode.encode({"b": 1, "a": "x"}) == b"d1:a1:x1:bi1ee"


@pytest.mark.parametrize("data", [b"d3:abc", b"i12", b"5:ab", b"x", b"le extra"])
def test_malformed_input_raises_value_error(data):
    with pytest.raises(ValueError):
        bencode.decode(data)
