"""The family table: every API family declared once.

A family entry says where its wire truth comes from (generated modules of a
wheel, or a descriptor set of its own), where its specs are (documented
inventory and rule files), how its REST gateway behaves, and which modules
implement it in the mock and model it in the harness.  Everything else is found
in the family's own folders by name: ``specs/<family>/``,
``mockserver/apis/<family>/`` (handlers, ``defects.py``, optional
``install_routes``), ``conformance/models/<family>/``.

A family may also live outside this package: ``PROTOCONFORM_FAMILIES`` names
importable modules (comma-separated), each defining ``FAMILY`` (a
:class:`Family`); they join the table when it is first read, in every process
(``serve``, ``check`` and the tests alike).  Names are strings here, never
imports, so this module stays below the engines that read it.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

ENVIRONMENT = "PROTOCONFORM_FAMILIES"


@dataclass(frozen=True)
class Family:
    name: str
    type_prefixes: tuple[str, ...]  # packages of its own types: what the docs and drift report call "ours"
    wheel_packages: tuple[str, ...] = ()  # generated *_pb2 modules carrying its descriptors
    descriptor_set: str = ""  # a serialized FileDescriptorSet of its own .proto files, when not in a wheel
    rest: str = "grpc-gateway-v2"  # REST convention (mockserver.gateway.conventions.CONVENTIONS)
    specs_folder: str = ""  # inventory.json and rule files; default: the package's specs/<name>/
    handlers: str = ""  # module that registers its handlers; default protoconform.mockserver.apis.<name>
    models: str = ""  # its conformance models; default protoconform.conformance.models.<name>
    # services its wire truth defines beyond the documented inventory that the mock serves too
    extra_services: tuple[str, ...] = ()

    @property
    def handlers_module(self) -> str:
        return self.handlers or f"protoconform.mockserver.apis.{self.name}"

    @property
    def models_module(self) -> str:
        return self.models or f"protoconform.conformance.models.{self.name}"

    def rules_folder(self) -> Traversable:
        if self.specs_folder:
            return Path(self.specs_folder)
        return resources.files("protoconform.specs").joinpath(self.name)

    def inventory_file(self) -> Traversable:
        if self.specs_folder:
            return Path(self.specs_folder) / "inventory.json"
        return resources.files("protoconform.specs").joinpath("inventory", f"{self.name}.json")


BUILT_IN: tuple[Family, ...] = (
    Family(
        "flyte",
        ("flyteidl.",),
        wheel_packages=("flyteidl.service",),
        rest="flyte",
        extra_services=("flyteidl.service.SyncAgentService",),  # the connectors' sync API, in the wheel
    ),
    Family("kfp", ("api.",), rest="kfp"),  # its descriptors come from protos/ (compiled with ours)
    Family("armonik", ("armonik.",), wheel_packages=("armonik.protogen.client", "armonik.protogen.worker")),
)


def _external() -> tuple[Family, ...]:
    found = []
    for module_name in filter(None, (n.strip() for n in os.environ.get(ENVIRONMENT, "").split(","))):
        family = getattr(importlib.import_module(module_name), "FAMILY", None)
        if not isinstance(family, Family):
            raise TypeError(f"{ENVIRONMENT}: module {module_name} defines no FAMILY = Family(...)")
        found.append(family)
    return tuple(found)


def _table() -> dict[str, Family]:
    table: dict[str, Family] = {}
    for family in (*BUILT_IN, *_external()):
        if family.name in table:
            raise ValueError(f"API family {family.name!r} is declared twice")
        table[family.name] = family
    return table


TABLE: dict[str, Family] = _table()


def family(name: str) -> Family:
    try:
        return TABLE[name]
    except KeyError:
        raise KeyError(f"unknown API family {name!r}; known: {', '.join(TABLE)}") from None
