"""Tenant settings: names, types, defaults and validation (pure).

Values are stored in Redis as text ("on"/"off", a choice, an integer) in the
tenant hash; a missing field means the default.
"""
import re
from collections.abc import Mapping
from dataclasses import dataclass

Value = bool | int | str        # a setting's typed value


@dataclass(frozen=True)
class Setting:
    kind: str               # "bool" | "choice" | "int" | "prefixes"
    default: Value
    doc: str
    choices: tuple[str, ...] = ()
    low: int = 0
    high: int = 0


SETTINGS = {
    "pbx_transfer": Setting(
        "bool", False, "Transfer by PBX: feature codes (*EXT, *1) during calls."),
    "transfer_caller_id": Setting(
        "bool", False, "Transfer with the caller's number: the target sees the client's number."),
    "transfer_hold_media": Setting(
        "choice", "music", "What the client hears while a transfer is in progress.",
        choices=("music", "ringback")),
    "transfer_digit_timeout": Setting(
        "int", 3, "Seconds after the last digit before a feature code without # completes.",
        low=1, high=30),
    "transfer_no_answer_timeout": Setting(
        "int", 15, "Seconds the transfer target may ring before the transfer fails.",
        low=5, high=120),
    "transfer_recall": Setting(
        "bool", True, "Call the transferor back when a blind transfer fails."),
    "transfer_recall_retries": Setting(
        "int", 2, "Further call-back tries after the first one fails.", low=0, high=5),
    "transfer_recall_delay": Setting(
        "int", 10, "Seconds between call-back tries.", low=1, high=120),
    "transfer_ringback_hz": Setting(
        "int", 425, "Frequency of the ringback tone (Hz).", low=300, high=3000),
    "transfer_ringback_on_ms": Setting(
        "int", 1000, "Ringback cadence: tone length (ms).", low=100, high=5000),
    "transfer_ringback_off_ms": Setting(
        "int", 4000, "Ringback cadence: pause length (ms).", low=0, high=10000),
    "transfer_external": Setting(
        "prefixes", "", "External numbers a code may transfer to, by prefix (e.g. 0049,0030; "
        "'' = none: extensions only, the toll-fraud guard); called via the outbound trunk."),
    "transfer_max_per_minute": Setting(
        "int", 30, "Transfers the PBX carries out for the tenant in any minute (codes and the "
        "REFERs it answers itself); more are refused. 0 = no cap.", low=0, high=10000),
    "transfer_trunk_to_trunk": Setting(
        "bool", False, "Allow transferring a client on a trunk to an external number (out "
        "through the outbound trunk again): the classic toll fraud, off by default."),
}

_TRUE = {"on", "yes", "true", "1"}
_FALSE = {"off", "no", "false", "0"}


def normalise(name: str, text: str) -> str:
    """Validate a value typed by an operator; return the text to store.

    Raises ValueError with a message meant for the operator.
    """
    setting = SETTINGS.get(name)
    if setting is None:
        raise ValueError(f"unknown setting {name!r}; known: {', '.join(sorted(SETTINGS))}")
    value = text.strip().lower()
    if setting.kind == "bool":
        if value in _TRUE:
            return "on"
        if value in _FALSE:
            return "off"
        raise ValueError(f"{name} takes on or off, not {text!r}")
    if setting.kind == "choice":
        if value in setting.choices:
            return value
        raise ValueError(f"{name} takes one of {', '.join(setting.choices)}, not {text!r}")
    if setting.kind == "prefixes":
        if value in ("''", '""'):           # none, typed as `vpbx show` prints it
            return ""
        prefixes = [p.strip() for p in value.split(",") if p.strip()]
        if all(re.fullmatch(r"\+?[0-9]{1,20}", p) for p in prefixes):
            return ",".join(prefixes)
        raise ValueError(f"{name} takes digit prefixes separated by commas (or ''), not {text!r}")
    try:
        number = int(value)
    except ValueError:
        number = None
    if number is None or not setting.low <= number <= setting.high:
        raise ValueError(f"{name} takes a whole number from {setting.low} to {setting.high}, not {text!r}")
    return str(number)


def effective(stored: Mapping[str, str]) -> dict[str, Value]:
    """Typed values of every setting from the stored tenant hash (defaults filled in)."""
    values: dict[str, Value] = {}
    for name, setting in SETTINGS.items():
        text = stored.get(name)
        if text is None:
            values[name] = setting.default
        elif setting.kind == "bool":
            values[name] = text == "on"
        elif setting.kind == "int":
            values[name] = int(text)
        else:
            values[name] = text
    return values


def render(value: object) -> str:
    """Operator-facing text of a typed value."""
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)
