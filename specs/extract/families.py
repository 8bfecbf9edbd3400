"""Which declarations belong to each family's inventory."""

from __future__ import annotations

from protoconform.specs.families import TABLE

# The family's own packages only (from the family table): well-known types
# documented alongside (google.protobuf.*) still help resolve names but are not kept.
FAMILY_PREFIXES: dict[str, tuple[str, ...]] = {name: entry.type_prefixes for name, entry in TABLE.items()}
