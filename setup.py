"""Map the fixed top-level folders under one import root, ``protoconform``.

``mockserver/`` becomes ``protoconform.mockserver`` and so on: the folder names
are the user's, while the import names must not collide with unrelated PyPI
packages called ``conformance`` or ``load``.
"""

import os

from setuptools import find_packages, setup

FOLDERS = ["mockserver", "conformance", "load", "specs", "protos"]

packages: list[str] = []
package_dir: dict[str, str] = {}
for folder in FOLDERS:
    if not os.path.isfile(os.path.join(folder, "__init__.py")):
        continue  # a part not started yet
    root = f"protoconform.{folder}"
    packages.append(root)
    package_dir[root] = folder
    packages += [f"{root}.{sub}" for sub in find_packages(where=folder)]

setup(
    packages=packages,
    package_dir=package_dir,
    package_data={
        "protoconform.specs": ["*.json", "*.yaml", "**/*.json", "**/*.yaml"],
        "protoconform.protos": ["**/*.proto", "*.md"],
        "protoconform.mockserver": ["**/*.html", "**/*.yaml", "**/*.json"],
        "protoconform.conformance": ["**/*.html", "**/*.yaml", "**/*.json", "**/*.css", "**/*.js"],
    },
)
