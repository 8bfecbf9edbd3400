"""The toy family's one table entry (named by PROTOCONFORM_FAMILIES=toy_family)."""

import os
from pathlib import Path

from protoconform.specs.families import Family

HERE = Path(__file__).parent

FAMILY = Family(
    "toy",
    type_prefixes=("toy.",),
    descriptor_set=os.environ["TOY_DESCRIPTOR_SET"],  # compiled from toy.proto by the test
    specs_folder=str(HERE / "specs"),
    handlers="toy_handlers",
)
