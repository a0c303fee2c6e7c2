"""The pure core imports no adapter: no KSR, Redis, sockets or processes (docs/architecture.md)."""
import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "kemi" / "vpbx"
PURE = ("settings", "provisioning", "routing", "registration", "dtmf", "transfer", "refer", "sdp",
        "bencode", "limits", "lockout", "call", "plan")
FORBIDDEN = {"KSR", "redis", "socket", "subprocess", "os", "time"}


def imports(module):
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:                                  # from . import x / from .x import y
                yield from ((f".{node.module}",) if node.module else
                            (f".{alias.name}" for alias in node.names))
            else:
                yield node.module


@pytest.mark.parametrize("module", PURE)
def test_pure_modules_import_no_adapter(module):
    for name in imports(module):
        if name.startswith("."):
            assert name[1:].split(".")[0] in PURE, f"{module} imports the adapter {name}"
        else:
            assert name.split(".")[0] not in FORBIDDEN, f"{module} imports {name}"


@pytest.mark.parametrize("module", ("store", "config"))
def test_the_proxys_store_and_config_use_no_redis_py(module):
    """The per-call store runs on the lean client (resp); redis-py is for provisioning_store."""
    assert not any(name and name.split(".")[0] == "redis" for name in imports(module))
