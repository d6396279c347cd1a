"""Every public exception and enum says in its own docstring when it is raised or what it
means: each exception names every attribute its constructor takes, each enum every member."""

from __future__ import annotations

import enum
import inspect

import pytest

import account_lifecycle
from account_lifecycle import errors


def _public() -> dict[str, type]:
    """The exceptions and enums exported from ``account_lifecycle`` and ``account_lifecycle.errors``."""
    found: dict[str, type] = {}
    for module in (account_lifecycle, errors):
        for name in module.__all__:
            value = getattr(module, name)
            if isinstance(value, type) and issubclass(value, BaseException | enum.Enum):
                found[name] = value
    return found


PUBLIC = _public()
EXCEPTIONS = sorted(name for name, cls in PUBLIC.items() if issubclass(cls, BaseException))
ENUMS = sorted(name for name, cls in PUBLIC.items() if issubclass(cls, enum.Enum))


def own_doc(cls: type) -> str:
    """The class's own docstring: one inherited from a base, or Enum's default, does not count."""
    doc = cls.__dict__.get("__doc__")
    return inspect.cleandoc(doc) if isinstance(doc, str) else ""


def test_the_public_classes_are_found() -> None:
    """The scan sees the exceptions and enums of the contract (it would pass on nothing otherwise)."""
    assert {"LifecycleError", "StoreError", "ConcurrentUpdate", "HistoryTampered"} <= set(EXCEPTIONS)
    assert {"State", "Action", "SurveyOutcome", "Relation", "ServiceState", "PurgeStatus"} <= set(ENUMS)


@pytest.mark.parametrize("name", EXCEPTIONS)
def test_each_public_exception_documents_when_and_its_attributes(name: str) -> None:
    """Its own docstring of at least a sentence, naming every parameter of its own constructor
    (the attributes a caller reads)."""
    cls = PUBLIC[name]
    doc = own_doc(cls)
    assert len(doc) >= 40, f"{name} has no docstring of its own saying when it is raised"
    if "__init__" in cls.__dict__:
        parameters = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
        missing = [p for p in parameters if p not in doc]
        assert not missing, f"{name}'s docstring does not mention {missing}"


@pytest.mark.parametrize("name", ENUMS)
def test_each_public_enum_documents_every_member(name: str) -> None:
    """Its own docstring, naming every member."""
    cls = PUBLIC[name]
    doc = own_doc(cls)
    assert doc, f"{name} has no docstring of its own"
    missing = [member.name for member in cls if f"``{member.name}``" not in doc]  # type: ignore[attr-defined]
    assert not missing, f"{name}'s docstring does not mention {missing}"


def test_own_doc_ignores_inherited_docstrings() -> None:
    """A subclass without a docstring of its own is reported, even when its base has one."""

    class Undocumented(errors.StoreError):
        pass

    class Bare(enum.StrEnum):
        A = "a"

    assert own_doc(Undocumented) == ""
    assert own_doc(Bare) == ""


def _public_callables() -> list[str]:
    """Every name exported from ``account_lifecycle`` that is a class or a function, and every
    public method and property defined on those classes: the API reference's entries."""
    names = []
    for name in account_lifecycle.__all__:
        value = getattr(account_lifecycle, name)
        if not (inspect.isclass(value) or inspect.isfunction(value)):
            continue
        names.append(name)
        if inspect.isclass(value) and not issubclass(value, BaseException | enum.Enum):
            for attribute, member in vars(value).items():
                if attribute.startswith("_") or not (
                    inspect.isfunction(member) or isinstance(member, property)
                ):
                    continue
                names.append(f"{name}.{attribute}")
    return sorted(names)


CALLABLES = _public_callables()


def test_the_scan_sees_the_service_and_the_stores() -> None:
    assert {"Lifecycle.confirm", "Lifecycle.sweep", "SQLiteStore.save", "MemoryStore.claim_due"} <= set(
        CALLABLES
    )


@pytest.mark.parametrize("name", CALLABLES)
def test_every_public_name_has_a_docstring(name: str) -> None:
    """The API reference is built from docstrings: a public name without one is a gap in it."""
    owner, _, attribute = name.partition(".")
    value = getattr(account_lifecycle, owner)
    if attribute:
        member = vars(value)[attribute]
        doc = (member.fget if isinstance(member, property) else member).__doc__
    else:
        doc = value.__dict__.get("__doc__") if inspect.isclass(value) else value.__doc__
    assert doc, f"{name} has no docstring"
    assert len(inspect.cleandoc(doc)) >= 10, f"{name}'s docstring says nothing"
