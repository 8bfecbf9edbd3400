"""Resolve type references to full names."""

from __future__ import annotations

from collections.abc import Iterable

from protoconform.specs.extract.model import SCALARS

# Package roots that make a dotted reference fully qualified even when the docs
# declare nothing under them.
EXTERNAL_ROOTS = ("google.",)


class TypeResolver:
    """Resolve type references with protobuf's scoping rules."""

    def __init__(self, known: Iterable[str]) -> None:
        self.known = set(known)
        self.roots = {name.split(".")[0] + "." for name in self.known} | set(EXTERNAL_ROOTS)
        self.notes: list[str] = []

    def __call__(self, written: str, scope: str, where: str) -> str:
        if written.startswith("map<"):
            key, value = written[4:-1].split(",")
            return f"map<{self(key, scope, where)},{self(value, scope, where)}>"
        name = written.lstrip(".")
        if name in SCALARS or written.startswith("."):
            return name
        parts = scope.split(".") if scope else []
        for depth in range(len(parts), -1, -1):  # innermost scope first
            candidate = ".".join([*parts[:depth], name])
            if candidate in self.known:
                return candidate
        if "." in name and any(name.startswith(root) for root in self.roots):
            return name  # fully qualified, declared outside these documents
        package = scope.split(".")
        while package and package[-1][:1].isupper():  # drop enclosing message names
            package.pop()
        assumed = ".".join([*package, name])
        self.notes.append(f"{where}: type {written!r} is not declared in the documents; assumed {assumed}")
        return assumed
