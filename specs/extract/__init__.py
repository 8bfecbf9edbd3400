"""Extract the documented API inventory from the seed documents.

The seeds come in three formats, each with its own parser that turns one
document into a :class:`Doc` (:mod:`.model`; names of declarations already
qualified, type references kept *as written* together with the scope they
appear in):

- reStructuredText with ``csv-table`` blocks (:func:`parse_rst`, :mod:`.rst`);
- a ``.proto`` file flattened onto one line, comments included
  (:func:`parse_proto`, :mod:`.proto`);
- plain text tables with one cell per line and empty cells dropped
  (:func:`parse_cells`, :mod:`.cells`), as copied from rendered HTML pages; the
  package of each file they name comes from :mod:`.packages`.

:mod:`.documents` tells a document's format and family.  :func:`normalise`
(:mod:`.normalise`) then merges every document of one family (:mod:`.merge`:
earlier seed files win; later ones fill gaps; disagreements are recorded as
notes), resolves type references to full names with protobuf's scoping rules
(:mod:`.resolve`), keeps the family's own declarations (:mod:`.families`) and
gives the stable JSON shape read by :func:`protoconform.specs.load_inventory`.

:mod:`.command` is ``protoconform specs extract``; ``python -m
protoconform.specs.extract --seeds DIR --out DIR`` runs it too.  Running it
twice on the same seeds gives byte-identical files.
"""

from __future__ import annotations

from protoconform.specs.extract.cells import parse_cells
from protoconform.specs.extract.command import add_arguments, dumps, extract, main, run, summary
from protoconform.specs.extract.documents import detect_family, detect_format, parse_document
from protoconform.specs.extract.families import FAMILY_PREFIXES
from protoconform.specs.extract.merge import Merger
from protoconform.specs.extract.model import (
    LABELS,
    SCALARS,
    Doc,
    DocEnum,
    DocEnumValue,
    DocField,
    DocMessage,
    DocMethod,
    DocService,
)
from protoconform.specs.extract.normalise import normalise
from protoconform.specs.extract.packages import (
    armonik_package_by_convention,
    armonik_package_map,
    armonik_package_resolver,
    flyte_package,
)
from protoconform.specs.extract.proto import parse_proto
from protoconform.specs.extract.resolve import TypeResolver
from protoconform.specs.extract.rst import parse_rst

__all__ = [
    "FAMILY_PREFIXES",
    "LABELS",
    "SCALARS",
    "Doc",
    "DocEnum",
    "DocEnumValue",
    "DocField",
    "DocMessage",
    "DocMethod",
    "DocService",
    "Merger",
    "TypeResolver",
    "add_arguments",
    "armonik_package_by_convention",
    "armonik_package_map",
    "armonik_package_resolver",
    "detect_family",
    "detect_format",
    "dumps",
    "extract",
    "flyte_package",
    "main",
    "normalise",
    "parse_cells",
    "parse_document",
    "parse_proto",
    "parse_rst",
    "run",
    "summary",
]
