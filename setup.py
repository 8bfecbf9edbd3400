"""Map the fixed top-level folders under one import root, ``protoconform``.

``mockserver/`` becomes ``protoconform.mockserver`` and so on: the folder names
are the user's, while the import names must not collide with unrelated PyPI
packages called ``conformance`` or ``load``.

The build also compiles ``protos/*.proto`` once (the ``build_protos`` step, see
``protos/build.py``) into ``protoconform/protos/descriptors.binpb``, so the
installed package never runs protoc.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from types import ModuleType

from setuptools import Command, find_packages, setup
from setuptools.command.build import build

HERE = os.path.dirname(os.path.abspath(__file__))
FOLDERS = ["mockserver", "conformance", "load", "specs", "protos"]
PROTOS_PACKAGE = "protoconform.protos"
DESCRIPTOR_SET = "descriptors.binpb"  # the name protoconform.protos reads at run time

packages: list[str] = []
package_dir: dict[str, str] = {}
for folder in FOLDERS:
    if not os.path.isfile(os.path.join(folder, "__init__.py")):
        continue  # a part not started yet
    root = f"protoconform.{folder}"
    packages.append(root)
    package_dir[root] = folder
    packages += [f"{root}.{sub}" for sub in find_packages(where=folder)]


def _load_protos_build() -> ModuleType:
    """protos/build.py, loaded by path: the package being built is not importable."""
    path = os.path.join(HERE, package_dir[PROTOS_PACKAGE], "build.py")
    spec = importlib.util.spec_from_file_location("_protoconform_protos_build", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class build_protos(Command):
    """Compile protos/*.proto into the package's descriptors.binpb.

    A wheel gets the file in build_lib; an editable install (whose package is
    the source folder) gets it in the source tree, where it is git-ignored.
    """

    description = "compile the package's .proto files into a FileDescriptorSet"
    user_options: list[tuple[str, str | None, str]] = []

    def initialize_options(self) -> None:
        self.build_lib: str | None = None
        self.editable_mode = False

    def finalize_options(self) -> None:
        self.set_undefined_options("build_py", ("build_lib", "build_lib"))

    def _source(self) -> str:
        return os.path.join(HERE, package_dir[PROTOS_PACKAGE])

    def _built(self) -> str:
        assert self.build_lib is not None
        return os.path.join(self.build_lib, *PROTOS_PACKAGE.split("."), DESCRIPTOR_SET)

    def run(self) -> None:
        if PROTOS_PACKAGE not in package_dir:
            return
        target = os.path.join(self._source(), DESCRIPTOR_SET) if self.editable_mode else self._built()
        self.announce(f"compiling {self._source()}/**/*.proto -> {target}", level=2)
        if self.dry_run:
            return
        try:
            _load_protos_build().write_descriptor_set(target=Path(target), root=Path(self._source()))
        except ImportError as exc:  # e.g. an isolated build without the [build-system] requirements
            raise RuntimeError(
                f"compiling protos/ needs grpcio-tools, protobuf, googleapis-common-protos and flyteidl "
                f"at build time ({exc})"
            ) from exc

    def get_outputs(self) -> list[str]:
        return [self._built()] if PROTOS_PACKAGE in package_dir else []

    def get_output_mapping(self) -> dict[str, str]:
        # Editable installs that link build_lib to sources find the file here.
        if not self.editable_mode or PROTOS_PACKAGE not in package_dir:
            return {}
        return {self._built(): os.path.join(self._source(), DESCRIPTOR_SET)}


class build_with_protos(build):
    sub_commands = [("build_protos", None), *build.sub_commands]


setup(
    packages=packages,
    package_dir=package_dir,
    package_data={
        "protoconform.specs": ["*.json", "*.yaml", "**/*.json", "**/*.yaml"],
        "protoconform.protos": ["**/*.proto", "*.md"],
        "protoconform.mockserver": ["**/*.html", "**/*.yaml", "**/*.json"],
        "protoconform.conformance": ["**/*.html", "**/*.yaml", "**/*.json", "**/*.css", "**/*.js"],
        "protoconform.load": ["**/*.yaml"],  # the mutation run's triage file
    },
    cmdclass={"build": build_with_protos, "build_protos": build_protos},
)
