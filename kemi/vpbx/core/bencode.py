"""Bencode, the encoding of rtpengine's ng control protocol (pure)."""
from typing import Any


def encode(value: object) -> bytes:
    if isinstance(value, bool):
        value = int(value)
    if isinstance(value, int):
        return b"i%de" % value
    if isinstance(value, str):
        value = value.encode()
    if isinstance(value, (bytes, bytearray)):
        return b"%d:%s" % (len(value), value)
    if isinstance(value, (list, tuple)):
        return b"l" + b"".join(encode(v) for v in value) + b"e"
    if isinstance(value, dict):
        items = sorted((k.encode() if isinstance(k, str) else k, v) for k, v in value.items())
        return b"d" + b"".join(encode(k) + encode(v) for k, v in items) + b"e"
    raise TypeError(f"cannot bencode {type(value).__name__}")


def decode(data: bytes) -> Any:
    """Decode bytes; byte strings come back as str (utf-8, undecodable bytes escaped)."""
    value, end = _decode(data, 0)
    if end != len(data):
        raise ValueError(f"trailing data at offset {end}")
    return value


def _decode(data: bytes, i: int) -> tuple[Any, int]:
    try:
        lead = data[i:i + 1]
        if lead == b"i":
            end = data.index(b"e", i)
            return int(data[i + 1:end]), end + 1
        if lead == b"l":
            items, i = [], i + 1
            while data[i:i + 1] != b"e":
                item, i = _decode(data, i)
                items.append(item)
            return items, i + 1
        if lead == b"d":
            result, i = {}, i + 1
            while data[i:i + 1] != b"e":
                key, i = _decode(data, i)
                result[key], i = _decode(data, i)
            return result, i + 1
        if lead.isdigit():
            colon = data.index(b":", i)
            start = colon + 1
            end = start + int(data[i:colon])
            if end > len(data):
                raise ValueError("string runs past the end")
            return data[start:end].decode("utf-8", "surrogateescape"), end
    except (IndexError, ValueError) as exc:
        raise ValueError(f"malformed bencode at offset {i}: {exc}") from None
    raise ValueError(f"malformed bencode at offset {i}")
