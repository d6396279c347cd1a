"""``import account_lifecycle`` loads nothing but the package: every public name is imported on
first use (PEP 562), no optional dependency is imported until a name that needs it is asked
for, and what a name resolves to is the class or function of its defining module. Each check
that looks at ``sys.modules`` runs in a fresh interpreter."""

from __future__ import annotations

import ast
import json
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

import account_lifecycle
import account_lifecycle.verify

PACKAGE = Path(account_lifecycle.__file__).parent

#: The extras' top-level modules: none is imported by ``import account_lifecycle``, nor by a
#: first command on the core stores.
OPTIONAL = (
    "celery",
    "click",
    "django",
    "flask",
    "greenlet",
    "hypothesis",
    "opentelemetry",
    "psycopg",
    "psycopg_pool",
    "pyinstrument",
    "pytest",
    "redis",
    "rich",
    "sqlalchemy",
    "statemachine",
)


def _fresh(code: str) -> dict[str, object]:
    """Run *code* in a fresh interpreter; it prints one JSON object, returned."""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    found: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return found


_LOADED = f"""
import json, sys
print(json.dumps({{
    "ours": sorted(m for m in sys.modules if m == "account_lifecycle" or m.startswith("account_lifecycle.")),
    "optional": sorted(m for m in sys.modules if m.split(".")[0] in {OPTIONAL!r}),
    "all": sorted(sys.modules),
}}))
"""


def test_a_bare_import_loads_the_package_alone() -> None:
    found = _fresh("import account_lifecycle\n" + _LOADED)
    assert found["ours"] == ["account_lifecycle", "account_lifecycle._lazy"]
    assert found["optional"] == []
    assert "importlib.metadata" not in found["all"]  # __version__ is read on first use


FIRST_COMMAND = """
from account_lifecycle import Actor, IdentityKey, IdentityKeys, Lifecycle, PurgeResult, policies
from account_lifecycle import {store} as Store


class Rows:
    def __init__(self, category):
        self.category = category

    def purge(self, account_id, context):
        return PurgeResult(items=0)


policy = policies.ALLCLIENTS
lc = Lifecycle(
    policy,
    store=Store({args}),
    purgers=[Rows(c.name) for c in policy.purge.categories],
    identity_keys=IdentityKeys(IdentityKey("k1", b"s" * 32)),
)
lc.open("acct-1", owner="u-1")
assert lc.request_cancellation("acct-1", Actor.user("u-1")).state.value == "surveyed"
"""

#: What a command on a core store does not need: imported only by the names or methods
#: that use them.
NOT_FOR_A_COMMAND = (
    "account_lifecycle.aio",
    "account_lifecycle.cli",
    "account_lifecycle.describe",
    "account_lifecycle.diagram",
    "account_lifecycle.migration",
    "account_lifecycle.receipts",
    "account_lifecycle.studio",
    "account_lifecycle.testing",
    "account_lifecycle.timeline",
    "account_lifecycle.verify",
)


@pytest.mark.parametrize("store", ["MemoryStore", "SQLiteStore"])
def test_a_first_command_imports_what_it_uses(store: str, tmp_path: Path) -> None:
    args = repr(str(tmp_path / "accounts.db")) if store == "SQLiteStore" else ""
    found = _fresh(FIRST_COMMAND.format(store=store, args=args) + _LOADED)
    assert found["optional"] == ["opentelemetry"] or found["optional"] == []  # the namespace alone
    assert "opentelemetry.trace" not in found["all"]  # no provider set: the API is not imported
    loaded = [m for m in found["ours"] if isinstance(m, str) and m.startswith(NOT_FOR_A_COMMAND)]
    assert loaded == []
    for unused in ("pathlib", "importlib.resources", "difflib", "importlib.metadata"):
        assert unused not in found["all"], unused
    assert ("account_lifecycle.adapters.sqlite" in found["ours"]) == (store == "SQLiteStore")


def test_every_public_name_resolves_to_its_defining_modules_object() -> None:
    found = _fresh(
        """
import importlib, json
import account_lifecycle
out = {}
for name in account_lifecycle.__all__:
    value = getattr(account_lifecycle, name)
    module = account_lifecycle._LAZY[name]
    home = importlib.import_module(module)
    same = value is home if module.endswith("." + name) else value is getattr(home, name)
    out[name] = same
missing = sorted(set(account_lifecycle.__all__) - set(dir(account_lifecycle)))
print(json.dumps({"same": out, "missing_from_dir": missing}))
"""
    )
    assert found["same"] == dict.fromkeys(account_lifecycle.__all__, True)
    assert found["missing_from_dir"] == []


def test_from_import_of_every_public_name_in_a_fresh_interpreter() -> None:
    names = ", ".join(account_lifecycle.__all__)
    found = _fresh(f"from account_lifecycle import {names}\nimport json\nprint(json.dumps({{}}))")
    assert found == {}


def test_the_table_lists_each_public_name_once_and_all_is_sorted() -> None:
    assert account_lifecycle.__all__ == sorted(account_lifecycle.__all__)
    assert sorted(account_lifecycle._LAZY) == account_lifecycle.__all__
    assert sum(len(names) for names in account_lifecycle._WHERE.values()) == len(account_lifecycle.__all__)
    assert sorted(account_lifecycle.verify._LAZY) == sorted(account_lifecycle.verify.__all__)


def _type_checking_imports(path: Path) -> dict[str, str]:
    """name -> module of the imports under ``if TYPE_CHECKING:`` in *path*."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            for child in node.body:
                if isinstance(child, ast.ImportFrom) and child.module:
                    for alias in child.names:
                        found[alias.asname or alias.name] = f"{child.module}.{alias.name}"
    return found


@pytest.mark.parametrize("package", [account_lifecycle, account_lifecycle.verify], ids=lambda p: p.__name__)
def test_what_type_checkers_see_is_what_runs(package: object) -> None:
    """The ``if TYPE_CHECKING:`` imports (what mypy and IDEs read) name the same module for each
    public name as the table ``__getattr__`` imports from."""
    path = Path(package.__file__)  # type: ignore[attr-defined]
    seen = _type_checking_imports(path)
    table = package._LAZY  # type: ignore[attr-defined]
    expected = {}
    for name, module in table.items():
        expected[name] = module if module.endswith(f".{name}") else f"{module}.{name}"
    assert {name: seen.get(name) for name in table} == expected


def test_classes_keep_their_identity_and_pickle() -> None:
    from account_lifecycle.lifecycle import Lifecycle
    from account_lifecycle.model import Actor, State

    assert account_lifecycle.Lifecycle is Lifecycle
    assert account_lifecycle.State.__module__ == "account_lifecycle.model"
    actor = account_lifecycle.Actor.user("u-1")
    assert pickle.loads(pickle.dumps(actor)) == actor == Actor.user("u-1")
    assert pickle.loads(pickle.dumps(State.ACTIVE)) is account_lifecycle.State.ACTIVE


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match=r"module 'account_lifecycle' has no attribute 'Nope'"):
        account_lifecycle.Nope  # noqa: B018
    with pytest.raises(AttributeError, match=r"module 'account_lifecycle\.verify' has no attribute 'nope'"):
        account_lifecycle.verify.nope  # noqa: B018
    with pytest.raises(ImportError):
        exec("from account_lifecycle import Nope", {})


def test_submodules_still_import_by_name() -> None:
    found = _fresh(
        """
import json
from account_lifecycle import telemetry, aio
from account_lifecycle.verify import graph, verify_policy
from account_lifecycle.purge import ErasureReceipt
from account_lifecycle.receipts import ErasureReceipt as Home
print(json.dumps({"receipt": ErasureReceipt is Home, "telemetry": telemetry.__name__, "aio": aio.__name__,
                  "graph": graph.__name__, "verify": callable(verify_policy)}))
"""
    )
    assert found == {
        "receipt": True,
        "telemetry": "account_lifecycle.telemetry",
        "aio": "account_lifecycle.aio",
        "graph": "account_lifecycle.verify.graph",
        "verify": True,
    }


def test_the_pytest_plugin_entry_point_loads() -> None:
    found = _fresh(
        """
import json
from importlib.metadata import entry_points
(plugin,) = [e for e in entry_points(group="pytest11") if e.name == "account_lifecycle"]
module = plugin.load()
print(json.dumps({"name": module.__name__}))
"""
    )
    assert found == {"name": "account_lifecycle.testing.plugin"}


@pytest.mark.parametrize("name", ["smrtphone", "allclients"])
def test_a_built_in_policy_reads_the_same_as_its_shipped_file(name: str) -> None:
    from account_lifecycle import policies
    from account_lifecycle.policy import Policy

    assert policies.load(name) == Policy.from_toml(policies.path(name).read_text(encoding="utf-8"))
    assert (PACKAGE / "policies" / f"{name}.toml").read_text(encoding="utf-8") == policies.path(
        name
    ).read_text(encoding="utf-8")
    with pytest.raises(KeyError, match="no built-in policy 'nope'"):
        policies.load("nope")
