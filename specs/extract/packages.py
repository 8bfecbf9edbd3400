"""Packages of the files that the cell tables name only by their file name."""

from __future__ import annotations

import importlib
import pkgutil
import re
from collections.abc import Callable


def flyte_package(file_name: str) -> str:
    """Flyte lays out files by package: ``flyteidl/service/admin.proto`` -> ``flyteidl.service``."""
    return file_name.rpartition("/")[0].replace("/", ".")


def armonik_package_map() -> dict[str, str]:
    """File name -> package, as declared by the files in the armonik wheel."""
    try:
        root = importlib.import_module("armonik.protogen")
    except ImportError:
        return {}
    packages = {}
    for info in pkgutil.walk_packages(root.__path__, root.__name__ + "."):
        if info.name.endswith("_pb2"):
            file = importlib.import_module(info.name).DESCRIPTOR
            packages[file.name.rpartition("/")[2]] = file.package
    return packages


def armonik_package_by_convention(file_name: str) -> str:
    """``sessions_service.proto`` -> ``armonik.api.grpc.v1.sessions``; a status
    file (``task_status.proto``) is its own package."""
    stem = file_name.rpartition("/")[2].removesuffix(".proto")
    stem = re.sub(r"_(common|fields|filters|service)$", "", stem)
    return f"armonik.api.grpc.v1.{stem}"


def armonik_package_resolver(notes: list[str]) -> Callable[[str], str]:
    # The docs give bare file names and short type names.  Which package a file
    # declares is a fact about the .proto sources, which the wheel carries; the
    # naming convention is only a fallback (it misses objects.proto and
    # filters_common.proto, which sit in armonik.api.grpc.v1 itself).
    declared = armonik_package_map()

    def resolve(file_name: str) -> str:
        base = file_name.rpartition("/")[2]
        if base in declared:
            return declared[base]
        guess = armonik_package_by_convention(base)
        notes.append(f"package of {base} not found in the armonik wheel; assumed {guess}")
        return guess

    return resolve
