"""The layers of the package tree hold (docs/architecture.md): the core imports nothing but
the core and no I/O (no KSR, Redis, sockets, processes, clock); the engine imports the core
only; only adapters/kamailio/sip.py imports KSR; the per-call store uses no redis-py; test
helpers live under tests/, not in the runtime package."""
import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "kemi" / "vpbx"
CORE = sorted(p.stem for p in (PACKAGE / "core").glob("*.py") if p.stem != "__init__")
ENGINE = sorted(p.stem for p in (PACKAGE / "engine").glob("*.py") if p.stem != "__init__")
IO = {"KSR", "redis", "socket", "subprocess", "os", "time", "threading", "asyncio", "http"}


def imports(path):
    """The absolute names a module imports (the package's imports are absolute: vpbx.…)."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert not node.level, f"{path.name}: a relative import"
            module = node.module or ""
            yield from (f"{module}.{alias.name}" if module.split(".")[0] == "vpbx" else module
                        for alias in node.names)


def test_the_layers_exist():
    assert "transfer" in CORE and "call" in CORE and "plan" in CORE
    assert ENGINE == ["codes", "ports", "transfers"]


@pytest.mark.parametrize("module", CORE)
def test_the_core_imports_only_the_core_and_no_io(module):
    for name in imports(PACKAGE / "core" / f"{module}.py"):
        if name.startswith("vpbx."):
            assert name.startswith("vpbx.core."), f"core/{module} imports {name}"
        else:
            assert name.split(".")[0] not in IO, f"core/{module} imports {name}"


@pytest.mark.parametrize("module", ENGINE)
def test_the_engine_imports_the_core_only(module):
    for name in imports(PACKAGE / "engine" / f"{module}.py"):
        if name.startswith("vpbx."):
            assert name.startswith(("vpbx.core.", "vpbx.engine.")), f"engine/{module} imports {name}"
        else:
            assert name.split(".")[0] not in IO - {"os", "time"}, f"engine/{module} imports {name}"


def test_only_the_sip_adapter_imports_ksr():
    users = sorted(str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")
                   if "KSR" in {n.split(".")[0] for n in imports(p)})
    assert users == ["adapters/kamailio/sip.py"]


@pytest.mark.parametrize("module", ("adapters/redis/store.py", "config.py"))
def test_the_proxys_store_and_config_use_no_redis_py(module):
    """The per-call store runs on the lean client (resp); redis-py is for provisioning_store."""
    assert not any(name.split(".")[0] == "redis" for name in imports(PACKAGE / module))


def test_no_test_helpers_in_the_runtime_package():
    assert not [p for p in PACKAGE.rglob("*.py") if "fake" in p.stem or p.stem.startswith("test")]
