"""Validation of provisioning input: tenant domains, extensions, trunks (pure).

Each function returns the canonical form or raises ValueError with a message
meant for the operator.
"""
import hashlib
import ipaddress
import re

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_EXTENSION = re.compile(r"^[1-9][0-9]{1,5}$")


def domain(text: str) -> str:
    name = text.strip().lower().rstrip(".")
    if not name or len(name) > 253 or not all(_LABEL.match(label) for label in name.split(".")):
        raise ValueError(f"{text!r} is not a valid SIP domain name")
    if all(label.isdigit() for label in name.split(".")):
        raise ValueError(f"{text!r} is an IP address; a tenant is named by a domain")
    return name


def extension(text: str) -> str:
    ext = text.strip()
    if not _EXTENSION.match(ext):
        raise ValueError(f"{text!r} is not a valid extension: 2 to 6 digits, not starting with 0"
                         " (1 and codes starting with * are reserved for feature codes)")
    return ext


def password(text: str | None) -> str:
    if not text or any(c.isspace() for c in text) or len(text) > 128:
        raise ValueError("a password is 1 to 128 characters without spaces")
    return text


def ha1(user: str, realm: str, secret: str) -> str:
    """Digest HA1 as stored: MD5(user:realm:password), the password itself is never stored."""
    return hashlib.md5(f"{user}:{realm}:{secret}".encode()).hexdigest()


def hostport(text: str) -> str:
    """A trunk address, IP:PORT (or [IPv6]:PORT). Trunks are trusted by source address,
    so a host name would have to be resolved on every call: only IP literals are accepted."""
    value = text.strip()
    match = re.match(r"^\[([0-9a-fA-F:.]+)\]:(\d+)$", value) or re.match(r"^([0-9.]+):(\d+)$", value)
    if not match:
        raise ValueError(f"{text!r} is not IP:PORT (IPv6 as [ADDR]:PORT)")
    try:
        address = ipaddress.ip_address(match.group(1))
    except ValueError:
        raise ValueError(f"{match.group(1)!r} is not an IP address") from None
    port = int(match.group(2))
    if not 1 <= port <= 65535:
        raise ValueError(f"port {port} is out of range 1-65535")
    host = f"[{address.compressed}]" if address.version == 6 else address.compressed
    return f"{host}:{port}"
