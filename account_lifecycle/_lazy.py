"""Public names imported on first use (PEP 562): a package's ``__getattr__`` and ``__dir__``.

A package lists where each of its public names lives; ``import account_lifecycle`` then costs
next to nothing, and ``from account_lifecycle import Lifecycle`` imports what ``Lifecycle``
needs and no more. The value found is stored in the package's namespace, so the next lookup
is a plain attribute and every caller gets the same object (the class itself: identity and
pickling are unchanged, its ``__module__`` is where it is defined).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, MutableMapping
from importlib import import_module
from typing import Any


def resolve(namespace: MutableMapping[str, Any], table: Mapping[str, str], name: str) -> Any:
    """The public *name* of the package whose globals are *namespace*, imported from the
    module *table* names for it. A name that is the package's own submodule (``policies``)
    is that module."""
    package = namespace["__name__"]
    try:
        module_name = table[name]
    except KeyError:
        raise AttributeError(f"module {package!r} has no attribute {name!r}") from None
    module = import_module(module_name)
    value = module if module_name == f"{package}.{name}" else getattr(module, name)
    namespace[name] = value
    return value


def listing(namespace: Mapping[str, Any], public: Iterable[str]) -> list[str]:
    """``dir()`` of a lazy package: what is loaded so far and every public name."""
    return sorted({*namespace, *public})
